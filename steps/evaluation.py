from typing import Annotated

from zenml import log_metadata, step
from zenml.types import HTMLString

from drugslm_core.config import EvaluationSettings, RegistrySettings, RetrievalSettings
from drugslm_core.data.formatting import InstructionDataset
from drugslm_core.evaluation.compare import EvaluationResult
from drugslm_core.evaluation.promotion import PromotionDecision
from drugslm_core.modeling.training import TrainingOutcome
from drugslm_core.registry.candidate import evaluate_against_champion
from drugslm_core.retrieval.index import RetrievalIndex
from drugslm_core.retrieval.search import Retriever


@step(experiment_tracker=True)
def evaluate(
    adapter: TrainingOutcome,
    eval_split: InstructionDataset,
    settings: EvaluationSettings,
    registry: RegistrySettings,
    retrieval_index: RetrievalIndex | None = None,
    retrieval: RetrievalSettings | None = None,
) -> tuple[
    Annotated[EvaluationResult, "evaluation"],
    Annotated[PromotionDecision, "promotion_decision"],
    Annotated[HTMLString, "evaluation_report"],
]:
    """Base vs tuned vs champion on the eval split and the benchmark (and base/tuned with retrieval when
    the run built an index); the gate's decision; the run report."""
    retriever = Retriever(retrieval_index, retrieval) if retrieval_index is not None and retrieval is not None else None
    candidate = evaluate_against_champion(adapter, eval_split, settings, registry, retriever, retrieval)
    result, decision = candidate.result, candidate.decision
    log_metadata({"base_perplexity": result.base.perplexity, "tuned_perplexity": result.tuned.perplexity,
                  "promote": decision.promote, "decision": decision.summary,
                  **({"retrieval_recall_at_k": result.rag.recall_at_k} if result.rag else {})})
    return result, decision, HTMLString(candidate.report_html)
