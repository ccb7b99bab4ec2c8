"""Start the training pipeline for a monitoring trigger, with the reason on the run and the version.

The reason becomes the run's tags (``retrain``) and metadata (``retrain_reason``), and, once the
run has registered a version, that MLflow model version's ``retrain_reason`` tag. Locally the run
is a subprocess (``python -m pipelines.retrain``, the active stack) or in-process; on Kubernetes
the same call submits the run to the orchestrator and returns: the version tag is then written
by the next monitoring run's look-up (not done here yet, see docs/monitoring.md).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run_training(reason: str, config_path: Path) -> str:
    from zenml import log_metadata

    from pipelines.training import training_pipeline

    run = training_pipeline.with_options(config_path=str(config_path), tags=["retrain"])()
    run_id = str(run.id) if run is not None else ""
    if run_id:
        log_metadata(metadata={"retrain_reason": reason}, run_id_name_or_prefix=run_id)
        tag_registered_version(run_id, reason, stack_tracking_uri())
    return run_id


def stack_tracking_uri() -> str | None:
    """The active stack's MLflow (its experiment tracker), where the run registered its version.

    Outside a step nothing points MLflow there: without this the launcher's own process would
    look in MLflow's default store (``./mlruns``) and find no version to tag. The tracker's
    ``configure_mlflow`` also sets the credentials a remote tracking server needs."""
    from zenml.client import Client

    tracker = Client().active_stack.experiment_tracker
    if tracker is None:
        return None  # no tracker on the stack: MLflow's own default
    configure = getattr(tracker, "configure_mlflow", None)
    if configure is not None:
        configure()
    uri = getattr(tracker, "get_tracking_uri", None)
    return str(uri()) if uri is not None else None


def tag_registered_version(run_id: str, reason: str, tracking_uri: str | None = None) -> str | None:
    """The MLflow model version the run registered (its ``zenml_run_id`` tag) gets ``retrain_reason``."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    for version in client.search_model_versions(f"tags.zenml_run_id = '{run_id}'"):
        client.set_model_version_tag(version.name, version.version, "retrain_reason", reason[:5000])
        return str(version.version)
    return None


def launch_training(reason: str, config_path: Path, in_process: bool = False) -> str:
    if in_process:
        return run_training(reason, config_path)
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.retrain", str(config_path), reason], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"the retraining run failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("retraining run ")]
    return lines[-1].split()[-1] if lines else ""


if __name__ == "__main__":
    print("retraining run", run_training(sys.argv[2], Path(sys.argv[1])))
