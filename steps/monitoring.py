"""Monitoring steps: the champion's data through lineage, drift + knowledge-base report, trigger."""

from __future__ import annotations

import json
from typing import Annotated

from zenml import log_metadata, step
from zenml.client import Client
from zenml.types import HTMLString

from drugslm_core.config import MonitoringSettings, RegistrySettings
from drugslm_core.data.formatting import InstructionDataset
from drugslm_core.data.records import RecordBatch
from drugslm_core.monitoring.reference import MonitoringData, from_dataset, from_records
from drugslm_core.monitoring.triggers import TriggerDecision


@step(enable_cache=False, experiment_tracker=True)  # the tracker points MLflow at the stack's registry
def champion_reference(settings: RegistrySettings) -> Annotated[MonitoringData, "reference_data"]:
    """The champion's training data: MLflow alias → version tag ``zenml_run_id`` → that run's
    ``instruction_dataset`` artifact. The registry is the champion authority and the tag is written
    when the version is registered; the artifact is the exact data it was trained on (MLflow holds
    only its fingerprint). No champion yet: an empty reference and one clear line."""
    import mlflow

    client = mlflow.MlflowClient()
    from drugslm_core.registry.aliases import current_version

    version = current_version(client, settings.model_name, settings.champion_alias)
    if version is None:
        print(f"no champion yet ({settings.model_name}@{settings.champion_alias}): nothing to compare against")
        return MonitoringData(label="no champion")
    tags = client.get_model_version(settings.model_name, version).tags
    run_id = tags.get("zenml_run_id")
    if not run_id:
        raise ValueError(f"{settings.model_name} v{version} has no zenml_run_id tag: its training data cannot be found")
    run = Client().get_pipeline_run(run_id)
    dataset: InstructionDataset = run.steps["build_dataset"].outputs["instruction_dataset"][0].load()
    if dataset.fingerprint() != tags.get("dataset_fingerprint", dataset.fingerprint()):
        raise ValueError(f"run {run_id}'s instruction_dataset does not match the fingerprint on v{version}")
    log_metadata({"champion_version": version, "training_run": str(run_id), "examples": len(dataset)})
    return from_dataset(dataset, f"champion v{version} (run {run.name})")


@step(enable_cache=False, experiment_tracker=True)
def monitor(
    reference: MonitoringData, current_records: RecordBatch, settings: MonitoringSettings, benchmark_path: str | None = None
) -> tuple[Annotated[HTMLString, "monitoring_report"], Annotated[TriggerDecision, "trigger_decision"]]:
    """Drift of the current questions, knowledge-base changes, the retraining decision; scores to MLflow."""
    from pathlib import Path

    import mlflow

    from drugslm_core.monitoring.runner import monitor_batches

    current = from_records(current_records, "current batch")
    benchmark = json.loads(Path(benchmark_path).read_text())["questions"] if benchmark_path else _bundled_benchmark()
    result = monitor_batches(reference, current, settings, benchmark)
    mlflow.log_metrics(result.metrics())
    mlflow.set_tags({"monitoring.retrain": str(result.decision.retrain), "monitoring.reason": result.decision.reason[:5000]})
    log_metadata({**result.metrics(), "retrain": result.decision.retrain, "reason": result.decision.reason})
    print(("retraining: " if result.decision.retrain else "") + result.decision.reason)
    return HTMLString(result.html), result.decision


def _bundled_benchmark() -> list[dict]:
    from importlib.resources import files

    return json.loads(files("drugslm_core.data.benchmark").joinpath("drug_benchmark_v1.json").read_text())["questions"]


@step(enable_cache=False)
def retrain(decision: TriggerDecision, settings: MonitoringSettings) -> Annotated[str, "retraining_run"]:
    """Start the training pipeline when the decision says so (``monitoring.launch``); else nothing runs."""
    if not decision.retrain:
        print(decision.reason)
        return ""
    if settings.launch == "none":
        print(f"retraining wanted but monitoring.launch is 'none': {decision.reason}")
        return ""
    from pipelines.retrain import launch_training

    run_id = launch_training(decision.reason, settings.training_config, in_process=settings.launch == "in_process")
    log_metadata({"retraining_run": run_id, "reason": decision.reason})
    return run_id
