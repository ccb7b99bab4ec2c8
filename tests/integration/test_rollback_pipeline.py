"""`pipelines/rollback.py` through `zenml pipeline run`, in an isolated ZenML repository.

Like the end-to-end test, the project's pipeline sources are copied into a temporary
ZenML repository with its own ZENML_CONFIG_PATH and the `drugslm-local` stack; the
registry state (two versions, two recorded promotions) is made directly in the MLflow
store of that stack. No model is loaded.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from drugslm_core.registry.aliases import promote_version, read_history
from tests.isolated_project import BIN, isolated_project, run_command

MODEL = "drugslm-rollback-pipeline"

pytestmark = pytest.mark.e2e


def test_rollback_pipeline_moves_champion_back(tmp_path: Path) -> None:
    project, env = isolated_project(tmp_path, {}, {"DRUGSLM_REGISTRY__MODEL_NAME": MODEL})
    tracking_uri = run_command([str(BIN / "python"), "-m", "drugslm_ops.stacks.local"], project, env).strip().splitlines()[-1]

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        client = mlflow.MlflowClient()
        client.create_registered_model(MODEL)
        (tmp_path / "adapter").mkdir()
        (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
        mlflow.set_experiment("seed")
        with mlflow.start_run() as run:
            mlflow.log_artifacts(str(tmp_path / "adapter"), artifact_path="adapter")
        for version in ("1", "2"):
            client.create_model_version(MODEL, source=f"runs:/{run.info.run_id}/adapter", run_id=run.info.run_id)
            promote_version(client, MODEL, "champion", version, f"seeded v{version}")

        run_command([str(BIN / "zenml"), "pipeline", "run", "pipelines.rollback.rollback_pipeline"], project, env)

        assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "1"
        last = read_history(client, MODEL, "champion")[-1]
        assert (last.action, last.previous, last.version, last.reason) == ("rollback", "2", "1", "rollback pipeline")
    finally:
        mlflow.set_tracking_uri(previous)
