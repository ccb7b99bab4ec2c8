"""drugslm's repository tooling (ZenML-backed, kept out of ``drugslm_core``): the embedded and
loopback stacks (``drugslm_ops.stacks``), schedules, the Kubeflow option, the Kubernetes manifests
ZenML's orchestrator would submit, and the fine-tune job worker.

Installed with the project (``pip install -e .``). Its command groups reach the ``drugslm``
command line through the ``drugslm.commands`` entry points (``drugslm schedule``, ``drugslm
kubeflow``, ``drugslm stack``); the core never imports this package. Run them from the
repository root: they need its ``pipelines/`` and ``configs/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def repository_pipeline(import_path: str) -> Any:
    """A pipeline of the repository (``pipelines.training.training_pipeline``), loaded by ZenML's
    source loader: it puts the ZenML source root (the repository where ``zenml init`` ran) on the
    import path for the import, so the tooling needs no ``sys.path`` edits of its own. Elsewhere:
    one clear line instead of a traceback."""
    from zenml.utils import source_utils

    try:
        return source_utils.load(import_path)
    except ModuleNotFoundError as error:
        if error.name and import_path.startswith(error.name):
            raise SystemExit(
                f"cannot import {import_path} from {Path.cwd()}: run this from the drugslm repository root"
            ) from error
        raise
