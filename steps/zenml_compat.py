"""Every runtime workaround for a ZenML defect, in one place, each guarded by the ZenML version.

``install()`` applies the workarounds that the installed ZenML needs; ``steps/__init__.py``
calls it explicitly (a step pod imports the ``steps`` package before it runs a step, and no
earlier ZenML hook runs in that process). A ZenML outside a workaround's tested range gets
one warning naming the defect, so an upgrade re-checks it instead of silently patching
code that may have changed.

Workarounds:

``end_leftover_mlflow_runs`` (ZenML 0.98): ``StepRunner.run`` (zenml/orchestrators/step_runner.py)
calls ``stack.prepare_step_run`` — which starts the step's MLflow run
(``MLFlowExperimentTracker.prepare_step_run``) — before ``_parse_inputs`` loads the input
artifacts, and only the code after that sits in the ``try/finally`` that ends the run via
``cleanup_step_run``. An attempt that fails while loading its inputs (the artifact store
unreachable, e.g. S3 restarting) leaves its MLflow run active, and the retry in the same
process fails with "Run with UUID ... is already active". Found by
tests/integration/test_loopback_stack.py. The wrapped ``prepare_step_run`` first ends such a
leftover ZenML-tagged run as FAILED, which is what ZenML's own cleanup would have done.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import zenml
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from zenml.integrations.mlflow import mlflow_utils
from zenml.integrations.mlflow.experiment_trackers.mlflow_experiment_tracker import MLFlowExperimentTracker

logger = logging.getLogger(__name__)


def end_leftover_runs() -> None:
    """End the MLflow runs a failed attempt left active (ZenML-tagged ones only)."""
    mlflow_utils.stop_zenml_mlflow_runs("FAILED")


def end_leftover_mlflow_runs() -> bool:
    """Wrap ``MLFlowExperimentTracker.prepare_step_run`` once per process; ``True`` if it is wrapped now."""
    original = MLFlowExperimentTracker.prepare_step_run
    if getattr(original, "_drugslm_ends_leftover_runs", False):
        return True

    def prepare_step_run(self: MLFlowExperimentTracker, info: Any) -> None:
        end_leftover_runs()
        original(self, info)

    prepare_step_run._drugslm_ends_leftover_runs = True  # type: ignore[attr-defined]
    MLFlowExperimentTracker.prepare_step_run = prepare_step_run  # type: ignore[method-assign]
    return True


# name -> (ZenML versions it was verified against, the upstream defect in one line, the patch)
WORKAROUNDS: dict[str, tuple[str, str, Callable[[], bool]]] = {
    "end_leftover_mlflow_runs": (
        ">=0.98,<0.99",
        "StepRunner.run starts the MLflow run before loading inputs, outside the try/finally that ends it",
        end_leftover_mlflow_runs,
    ),
}


def install(version: str | None = None) -> dict[str, bool]:
    """Apply each workaround the ZenML ``version`` (default: the installed one) needs.

    Returns which were applied; the others are named in one warning each."""
    installed = Version(version or zenml.__version__)
    applied = {}
    for name, (verified, defect, patch) in WORKAROUNDS.items():
        if installed in SpecifierSet(verified):
            applied[name] = patch()
        else:
            applied[name] = False
            logger.warning(
                "ZenML %s: workaround %s (verified on ZenML %s) not applied; check whether the defect "
                "is fixed: %s (steps/zenml_compat.py)", installed, name, verified, defect,
            )
    return applied
