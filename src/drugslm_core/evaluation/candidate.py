"""Evaluate a freshly trained adapter against base and the current champion, and decide.

Pure: the caller hands in the champion's weights (``registry.candidate`` fetches them
from the MLflow registry and logs the results); this module measures base / tuned /
champion on the eval split and the benchmark, applies the promotion gate and renders
the run report.
"""

from __future__ import annotations

from pydantic import BaseModel

from drugslm_core.config import EvaluationSettings, RegistrySettings, RetrievalSettings
from drugslm_core.data.formatting import InstructionDataset
from drugslm_core.evaluation.benchmark import load_benchmark
from drugslm_core.evaluation.compare import ChampionWeights, EvaluationResult, evaluate_adapter
from drugslm_core.evaluation.promotion import PromotionDecision, decide_for_evaluation
from drugslm_core.evaluation.report import render_evaluation_report
from drugslm_core.modeling.training import TrainingOutcome
from drugslm_core.retrieval.search import Retriever


class CandidateEvaluation(BaseModel):
    result: EvaluationResult
    decision: PromotionDecision
    report_html: str


def evaluate_candidate(
    outcome: TrainingOutcome,
    eval_split: InstructionDataset,
    settings: EvaluationSettings,
    registry: RegistrySettings,
    champion: ChampionWeights | None = None,
    retriever: Retriever | None = None,
    retrieval: RetrievalSettings | None = None,
) -> CandidateEvaluation:
    result = evaluate_adapter(
        outcome.adapter_dir, outcome.base_model, eval_split, load_benchmark(settings.benchmark_path), settings,
        outcome.settings.max_seq_length, outcome.settings.compute_dtype, champion, retriever, retrieval,
    )
    # A str-keyed copy: Mapping is invariant in its key type, so the Literal-keyed settings dict
    # is not a Mapping[str, float] to mypy although every key is a str.
    ceilings: dict[str, float] = dict(registry.safety_ceilings.items())
    decision = decide_for_evaluation(
        result, registry.primary_metric, registry.min_relative_improvement, registry.safety_alpha, ceilings,
    )
    report = render_evaluation_report(result, outcome, decision)
    return CandidateEvaluation(result=result, decision=decision, report_html=report)
