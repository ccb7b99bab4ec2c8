from typing import Annotated

from zenml import log_metadata, step
from zenml.types import HTMLString

from drugslm_core.config import EvaluationSettings, RegistrySettings
from drugslm_core.data.formatting import InstructionDataset
from drugslm_core.evaluation.compare import EvaluationResult
from drugslm_core.evaluation.promotion import PromotionDecision
from drugslm_core.modeling.training import TrainingOutcome
from drugslm_core.registry.candidate import evaluate_against_champion


@step(experiment_tracker=True)
def evaluate(
    adapter: TrainingOutcome,
    eval_split: InstructionDataset,
    settings: EvaluationSettings,
    registry: RegistrySettings,
) -> tuple[
    Annotated[EvaluationResult, "evaluation"],
    Annotated[PromotionDecision, "promotion_decision"],
    Annotated[HTMLString, "evaluation_report"],
]:
    """Base vs tuned vs champion on the eval split and the benchmark; the gate's decision; the run report."""
    candidate = evaluate_against_champion(adapter, eval_split, settings, registry)
    result, decision = candidate.result, candidate.decision
    log_metadata({"base_perplexity": result.base.perplexity, "tuned_perplexity": result.tuned.perplexity,
                  "promote": decision.promote, "decision": decision.summary})
    return result, decision, HTMLString(candidate.report_html)
