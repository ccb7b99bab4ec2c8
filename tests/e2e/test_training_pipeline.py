"""The whole training pipeline through `zenml pipeline run`, on a tiny budget.

The project's pipeline sources are copied into a temporary ZenML repository
with its own ZENML_CONFIG_PATH, so the test never touches the developer's
stack or runs; MLflow is the SQLite store ZenML's tracker keeps in that
temporary artifact store. Takes about two minutes on 2 CPU cores.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SOURCES = ("steps", "pipelines", "materializers", "stacks", "configs")

pytestmark = pytest.mark.e2e

TINY = {
    "training": {"max_steps": 8, "learning_rate": 0.0005, "max_seq_length": 256, "logging_steps": 2},
    "evaluation": {"max_eval_examples": 16, "generation_samples": 1, "max_new_tokens": 16},
    "registry": {"model_name": "drugslm-e2e"},
}


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=1200)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-8000:]}")
    return result.stdout


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    project = tmp_path_factory.mktemp("project")
    for name in SOURCES:
        shutil.copytree(ROOT / name, project / name, ignore=shutil.ignore_patterns("__pycache__"))
    config = yaml.safe_load((ROOT / "configs" / "local.yaml").read_text())
    for section, values in TINY.items():
        config["parameters"]["config"].setdefault(section, {}).update(values)
    (project / "configs" / "tiny.yaml").write_text(yaml.safe_dump(config))
    env = {
        **os.environ,
        "ZENML_CONFIG_PATH": str(tmp_path_factory.mktemp("zenml-config")),
        "ZENML_ANALYTICS_OPT_IN": "false",
        "ZENML_AUTO_OPEN_DASHBOARD": "false",
        "ZENML_ENABLE_RICH_TRACEBACK": "false",
        "GX_ANALYTICS_ENABLED": "false",
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(project),
    }
    env.pop("ZENML_REPOSITORY_PATH", None)
    _run([str(BIN / "zenml"), "init"], project, env)
    tracking_uri = _run([str(BIN / "python"), "-m", "stacks.local"], project, env).strip().splitlines()[-1]
    _run(
        [str(BIN / "zenml"), "pipeline", "run", "pipelines.training.training_pipeline", "-c", "configs/tiny.yaml"],
        project, env,
    )
    summary = json.loads(_run([str(BIN / "python"), "-m", "stacks.summary", "--json"], project, env).splitlines()[-1])
    summary["tracking_uri"] = tracking_uri
    return summary


def test_run_completed_and_data_accounted(pipeline_run: dict) -> None:
    assert pipeline_run["status"] == "completed"
    assert pipeline_run["records_accepted"] + pipeline_run["records_quarantined"] == 320


def test_tuned_beats_base_on_held_out_drugs(pipeline_run: dict) -> None:
    assert pipeline_run["tuned_eval_perplexity"] < pipeline_run["base_eval_perplexity"]


def test_mlflow_run_has_metrics_and_lineage(pipeline_run: dict) -> None:
    client = mlflow.MlflowClient(tracking_uri=pipeline_run["tracking_uri"])
    run = client.get_run(pipeline_run["mlflow_run_id"])
    for metric in ("base_eval_perplexity", "tuned_eval_perplexity", "train_loss", "relative_improvement"):
        assert metric in run.data.metrics, metric
    assert run.data.metrics["tuned_eval_perplexity"] == pytest.approx(pipeline_run["tuned_eval_perplexity"], abs=1e-3)
    assert run.data.tags["zenml_run_id"] == pipeline_run["zenml_run_id"]
    assert len(run.data.tags["dataset_fingerprint"]) == 64
    history = client.get_metric_history(run.info.run_id, "train_loss")
    assert len(history) >= 2


def test_model_version_registered_and_champion(pipeline_run: dict) -> None:
    client = mlflow.MlflowClient(tracking_uri=pipeline_run["tracking_uri"])
    version = client.get_model_version("drugslm-e2e", pipeline_run["mlflow_version"])
    assert version.run_id == pipeline_run["mlflow_run_id"]
    assert version.tags["base_model_sha256"]
    champion = client.get_model_version_by_alias("drugslm-e2e", "champion")
    assert champion.version == version.version  # first run, better than base: promoted
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=version.source, tracking_uri=pipeline_run["tracking_uri"]))
    assert (local / "adapter_config.json").is_file()
    assert (local / "adapter_model.safetensors").is_file()
