from typing import Annotated

from zenml import get_step_context, log_metadata, step

from drugslm_core.config import RegistrySettings
from drugslm_core.data.formatting import InstructionDataset
from drugslm_core.evaluation.compare import EvaluationResult
from drugslm_core.evaluation.promotion import decide_promotion
from drugslm_core.modeling.training import TrainingOutcome
from drugslm_core.registry.mlflow_registry import RegistrationResult, register_adapter


@step(experiment_tracker=True)
def register(
    adapter: TrainingOutcome,
    evaluation: EvaluationResult,
    dataset: InstructionDataset,
    settings: RegistrySettings,
) -> Annotated[RegistrationResult, "registration"]:
    """Register the adapter in MLflow; move ``champion`` only if it beats base and the champion."""
    decision = decide_promotion(
        evaluation.tuned.perplexity,
        evaluation.base.perplexity,
        evaluation.champion.perplexity if evaluation.champion else None,
        settings.min_relative_improvement,
    )
    run = get_step_context().pipeline_run
    lineage = {
        "zenml_run_id": str(run.id),
        "zenml_run_name": run.name,
        "zenml_pipeline": run.pipeline.name if run.pipeline else "",
        "dataset_fingerprint": dataset.fingerprint(),
        "domain_tag": dataset.domain_tag,
        "system_prompt": dataset.system_prompt,
    }
    result = register_adapter(adapter, evaluation, decision, settings.model_name, settings.champion_alias, lineage)
    log_metadata({"mlflow_model": result.model_name, "mlflow_version": result.version,
                  "promoted": result.promoted, "decision": result.decision}, infer_model=True)
    return result
