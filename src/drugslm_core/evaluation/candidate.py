"""Evaluate a freshly trained adapter against base and the current champion, and decide.

One call for the pipeline's evaluate step: fetch the champion (if any) from the
MLflow registry, measure base / tuned / champion on the eval split and the
benchmark, apply the promotion gate, render the run report and log it all to the
active MLflow run. The MLflow reads and writes are this module's side effects.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from pydantic import BaseModel

from drugslm_core.config import EvaluationSettings, RegistrySettings, RetrievalSettings
from drugslm_core.data.formatting import InstructionDataset
from drugslm_core.evaluation.benchmark import load_benchmark
from drugslm_core.evaluation.compare import EvaluationResult, evaluate_adapter
from drugslm_core.evaluation.promotion import PromotionDecision, decide_for_evaluation
from drugslm_core.evaluation.report import render_evaluation_report
from drugslm_core.modeling.training import TrainingOutcome
from drugslm_core.retrieval.search import Retriever
from drugslm_core.registry.loading import find_registered_adapter
from drugslm_core.registry.mlflow_registry import log_evaluation


class CandidateEvaluation(BaseModel):
    result: EvaluationResult
    decision: PromotionDecision
    report_html: str


def evaluate_candidate(
    outcome: TrainingOutcome,
    eval_split: InstructionDataset,
    settings: EvaluationSettings,
    registry: RegistrySettings,
    retriever: Retriever | None = None,
    retrieval: RetrievalSettings | None = None,
) -> CandidateEvaluation:
    champion = find_registered_adapter(
        registry.model_name, registry.champion_alias, Path(tempfile.mkdtemp(prefix="drugslm-champion-"))
    )
    result = evaluate_adapter(
        outcome.adapter_dir, outcome.base_model, eval_split, load_benchmark(settings.benchmark_path), settings,
        outcome.settings.max_seq_length, outcome.settings.compute_dtype, champion, retriever, retrieval,
    )
    decision = decide_for_evaluation(
        result, registry.primary_metric, registry.min_relative_improvement, registry.safety_alpha,
        registry.safety_ceilings,
    )
    report = render_evaluation_report(result, outcome, decision)
    log_evaluation(result, report)
    return CandidateEvaluation(result=result, decision=decision, report_html=report)
