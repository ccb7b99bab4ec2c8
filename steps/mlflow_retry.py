"""Let a retried step start its MLflow run (a workaround for ZenML 0.98).

ZenML's step runner starts the step's MLflow run (``MLFlowExperimentTracker.prepare_step_run``)
before it loads the step's input artifacts, and only the code after that is inside the
``try/finally`` that ends the run. An attempt that fails while loading its inputs (the
artifact store unreachable, e.g. S3 restarting) therefore leaves its MLflow run active, and
the retry in the same process fails with "Run with UUID ... is already active". Found by
tests/integration/test_loopback_stack.py. Here ``prepare_step_run`` first ends such a
leftover ZenML-tagged run as FAILED, which is what ZenML's own cleanup would have done.
"""

from __future__ import annotations

from typing import Any

from zenml.integrations.mlflow import mlflow_utils
from zenml.integrations.mlflow.experiment_trackers.mlflow_experiment_tracker import MLFlowExperimentTracker


def end_leftover_runs() -> None:
    """End the MLflow runs a failed attempt left active (ZenML-tagged ones only)."""
    mlflow_utils.stop_zenml_mlflow_runs("FAILED")


def install() -> None:
    """Wrap ``MLFlowExperimentTracker.prepare_step_run`` once per process."""
    original = MLFlowExperimentTracker.prepare_step_run
    if getattr(original, "_drugslm_ends_leftover_runs", False):
        return

    def prepare_step_run(self: MLFlowExperimentTracker, info: Any) -> None:
        end_leftover_runs()
        original(self, info)

    prepare_step_run._drugslm_ends_leftover_runs = True  # type: ignore[attr-defined]
    MLFlowExperimentTracker.prepare_step_run = prepare_step_run  # type: ignore[method-assign]
