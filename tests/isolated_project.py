"""A copy of the project's pipeline sources in a temporary ZenML repository.

Tests that run `zenml` commands use it so that they never touch the developer's
ZenML store, active stack (``.zen/``) or runs: the copy has its own
``ZENML_CONFIG_PATH`` and its own ``zenml init``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SOURCES = ("steps", "pipelines", "materializers", "configs")  # drugslm_core and drugslm_ops are installed


def run_command(args: list[str], cwd: Path, env: dict[str, str], timeout: int = 1800, with_stderr: bool = False) -> str:
    """Run a command; on failure raise with the tail of its output. Its stdout (and stderr, where
    ZenML logs, with ``with_stderr``)."""
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-8000:]}"
        )
    return result.stdout + (result.stderr if with_stderr else "")


def isolated_project(base: Path, settings: dict[str, dict], extra_env: dict[str, str] | None = None) -> tuple[Path, dict[str, str]]:
    """Copy the sources under ``base/project``, write ``configs/test.yaml`` (local.yaml with
    ``settings`` merged into ``parameters.config``), run ``zenml init``; return (project, env)."""
    project = base / "project"
    for name in SOURCES:
        if (ROOT / name).exists():
            shutil.copytree(ROOT / name, project / name, ignore=shutil.ignore_patterns("__pycache__"))
    config = yaml.safe_load((ROOT / "configs" / "local.yaml").read_text())
    # A test's training run must not leave a served model behind: deployment after a
    # promotion only where the test asks for it.
    config["parameters"]["config"].setdefault("deployment", {})["after_promotion"] = False
    for section, values in settings.items():
        config["parameters"]["config"].setdefault(section, {}).update(values)
    (project / "configs" / "test.yaml").write_text(yaml.safe_dump(config))
    env = {
        # The developer's ZenML and DRUGSLM_* overrides must not leak into the test's runs;
        # the model cache location is not a setting and is kept.
        **{k: v for k, v in os.environ.items() if not k.startswith(("ZENML_", "DRUGSLM_")) or k == "DRUGSLM_CACHE_DIR"},
        "ZENML_CONFIG_PATH": str(base / "zenml-config"),
        "ZENML_ANALYTICS_OPT_IN": "false",
        "ZENML_AUTO_OPEN_DASHBOARD": "false",
        "ZENML_ENABLE_RICH_TRACEBACK": "false",
        "ZENML_LOGGING_COLORS_DISABLED": "true",  # output captured, not a terminal
        "GX_ANALYTICS_ENABLED": "false",
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(project),
        **(extra_env or {}),
    }
    run_command([str(BIN / "zenml"), "init"], project, env)
    return project, env


def run_training_pipeline(project: Path, env: dict[str, str]) -> str:
    """``zenml pipeline run`` of the training pipeline; everything it printed (stdout and stderr)."""
    return run_command(
        [str(BIN / "zenml"), "pipeline", "run", "pipelines.training.training_pipeline", "-c", "configs/test.yaml"],
        project, env, with_stderr=True,
    )
