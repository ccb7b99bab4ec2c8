import tempfile
from pathlib import Path
from typing import Annotated

from zenml import log_metadata, step
from zenml.types import HTMLString

from drugslm_core.config import EvaluationSettings, RegistrySettings
from drugslm_core.data.formatting import InstructionDataset
from drugslm_core.evaluation.benchmark import load_benchmark
from drugslm_core.evaluation.compare import EvaluationResult, evaluate_adapter
from drugslm_core.evaluation.promotion import PromotionDecision, decide_for_evaluation
from drugslm_core.evaluation.report import render_evaluation_report
from drugslm_core.modeling.training import TrainingOutcome
from drugslm_core.registry.mlflow_registry import find_registered_adapter, log_evaluation


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
    champion = find_registered_adapter(registry.model_name, registry.champion_alias, Path(tempfile.mkdtemp()))
    result = evaluate_adapter(
        adapter.adapter_dir, adapter.base_model, eval_split, load_benchmark(settings.benchmark_path), settings,
        adapter.settings.max_seq_length, adapter.settings.compute_dtype, champion,
    )
    decision = decide_for_evaluation(
        result, registry.primary_metric, registry.min_relative_improvement, registry.safety_thresholds
    )
    report = render_evaluation_report(result, adapter, decision)
    log_evaluation(result, report)
    log_metadata({"base_perplexity": result.base.perplexity, "tuned_perplexity": result.tuned.perplexity,
                  "promote": decision.promote, "decision": decision.summary})
    return result, decision, HTMLString(report)
