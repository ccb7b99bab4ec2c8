import tempfile
from pathlib import Path
from typing import Annotated

from zenml import log_metadata, step
from zenml.types import HTMLString

from drugslm_core.config import EvaluationSettings, RegistrySettings
from drugslm_core.data.formatting import InstructionDataset
from drugslm_core.evaluation.compare import EvaluationResult, evaluate_adapter
from drugslm_core.evaluation.report import render_evaluation_report
from drugslm_core.modeling.training import TrainingOutcome
from drugslm_core.registry.mlflow_registry import find_registered_adapter, log_evaluation


@step(experiment_tracker=True)
def evaluate(
    adapter: TrainingOutcome,
    eval_split: InstructionDataset,
    settings: EvaluationSettings,
    registry: RegistrySettings,
) -> tuple[Annotated[EvaluationResult, "evaluation"], Annotated[HTMLString, "evaluation_report"]]:
    """Answer-token perplexity of base, tuned and current champion on the eval split; sample answers."""
    champion = find_registered_adapter(registry.model_name, registry.champion_alias, Path(tempfile.mkdtemp()))
    result = evaluate_adapter(
        adapter.adapter_dir, adapter.base_model, eval_split, settings,
        adapter.settings.max_seq_length, adapter.settings.compute_dtype, champion,
    )
    log_evaluation(result)
    log_metadata({"base_perplexity": result.base.perplexity, "tuned_perplexity": result.tuned.perplexity})
    return result, HTMLString(render_evaluation_report(result, adapter))
