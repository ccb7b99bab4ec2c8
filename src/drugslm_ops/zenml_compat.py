"""Every runtime workaround for a ZenML defect, in one place, each guarded by the ZenML version.

``install()`` applies the workarounds that the installed ZenML needs; ``steps/__init__.py``
calls it explicitly (a step pod imports the ``steps`` package before it runs a step, and no
earlier ZenML hook runs in that process), and so does every tooling command that loads
artifacts outside a pipeline (``drugslm_ops.stacks.summary``). A ZenML outside a workaround's tested range gets
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

``editable_installs_are_packages`` (ZenML 0.98): ``source_utils.is_distribution_package_file``
recognises a package only by its files lying in site-packages; its own TODO says editable
installs are missed. ``drugslm`` is installed editable from ``src/`` inside the ZenML
repository, so ``get_source_type`` takes ``drugslm_core`` for user code and resolves its classes
relative to the source root as ``src.drugslm_core....``. Loading such a source imports a second
copy of the module, whose classes no materializer accepts: ``make run``'s ``evaluate`` step
failed with "Unable to load type <class 'src.drugslm_core.retrieval.index.RetrievalIndex'>"
(the step input is ``RetrievalIndex | None``, so ZenML loads the stored type). The tests'
isolated projects have no ``src/`` and never showed it; step pods install the project into
site-packages and never see it. The wrapped check also counts modules of a distribution that
is installed editable (``direct_url.json``, PEP 610), so they resolve as
``drugslm_core....`` from the package ``drugslm``, as they do in the image.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import lru_cache
from importlib import metadata
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


@lru_cache(maxsize=256)
def is_editable_distribution_module(top_level: str) -> bool:
    """Whether the top-level package ``top_level`` belongs to a distribution installed editable."""
    for name in metadata.packages_distributions().get(top_level, []):
        try:
            direct_url = metadata.distribution(name).read_text("direct_url.json")
        except metadata.PackageNotFoundError:
            continue
        if direct_url and json.loads(direct_url).get("dir_info", {}).get("editable", False):
            return True
    return False


def editable_installs_are_packages() -> bool:
    """Wrap ``source_utils.is_distribution_package_file`` once per process; ``True`` if it is wrapped now."""
    from zenml.utils import source_utils

    original = source_utils.is_distribution_package_file
    if getattr(original, "_drugslm_counts_editable_installs", False):
        return True

    def is_distribution_package_file(file_path: str, module_name: str) -> bool:
        return original(file_path, module_name) or is_editable_distribution_module(module_name.split(".")[0])

    is_distribution_package_file._drugslm_counts_editable_installs = True  # type: ignore[attr-defined]
    source_utils.is_distribution_package_file = is_distribution_package_file
    return True


# name -> (ZenML versions it was verified against, the upstream defect in one line, the patch)
WORKAROUNDS: dict[str, tuple[str, str, Callable[[], bool]]] = {
    "end_leftover_mlflow_runs": (
        ">=0.98,<0.99",
        "StepRunner.run starts the MLflow run before loading inputs, outside the try/finally that ends it",
        end_leftover_mlflow_runs,
    ),
    "editable_installs_are_packages": (
        ">=0.98,<0.99",
        "source_utils.is_distribution_package_file misses editable installs, so src/ classes resolve as src.*",
        editable_installs_are_packages,
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
                "is fixed: %s (drugslm_ops/zenml_compat.py)", installed, name, verified, defect,
            )
    return applied
