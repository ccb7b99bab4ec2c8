"""The whole training pipeline through `zenml pipeline run`, on a tiny budget.

The project's pipeline sources are copied into a temporary ZenML repository
with its own ZENML_CONFIG_PATH, so the test never touches the developer's
stack or runs; MLflow is the SQLite store ZenML's tracker keeps in that
temporary artifact store. Takes about two minutes on 2 CPU cores.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import mlflow
import pytest

from tests.isolated_project import BIN, isolated_project, run_command, run_training_pipeline

pytestmark = pytest.mark.e2e

TINY = {
    "training": {"max_steps": 8, "learning_rate": 0.0005, "max_seq_length": 256, "logging_steps": 2, "eval_steps": 4},
    "evaluation": {"max_eval_examples": 16, "generation_samples": 1, "heldout_questions": 2, "max_new_tokens": 16},
    "registry": {"model_name": "drugslm-e2e"},
    "retrieval": {"eval_out_of_corpus": 2},  # RAG evaluation: the 1 benchmark question + 2 out-of-corpus ones
}


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    project, env = isolated_project(tmp_path_factory.mktemp("e2e"), TINY)
    tracking_uri = run_command([str(BIN / "python"), "-m", "drugslm_ops.stacks.local"], project, env).strip().splitlines()[-1]
    output = run_training_pipeline(project, env)
    summary = json.loads(run_command([str(BIN / "python"), "-m", "drugslm_ops.stacks.summary", "--json"], project, env).splitlines()[-1])
    summary["tracking_uri"] = tracking_uri
    summary["pipeline_output"] = output
    return summary


def test_run_completed_and_data_accounted(pipeline_run: dict) -> None:
    assert pipeline_run["status"] == "completed"
    expected = {"base_model", "ingest", "clean", "validate", "quality_gate", "build_dataset", "profile_dataset",
                "split", "finetune", "evaluate", "register", "build_retrieval_index"}
    assert expected <= set(pipeline_run["steps"]), pipeline_run["steps"]
    assert pipeline_run["records_accepted"] + pipeline_run["records_quarantined"] == 320


def test_pipeline_logs_are_plain_text(pipeline_run: dict) -> None:
    """Output that is not a terminal carries no ANSI colour codes (ZENML_LOGGING_COLORS_DISABLED).
    (Progress bars still move the cursor, ``ESC[A``: that is progress, not colour.)"""
    output = pipeline_run["pipeline_output"]
    assert re.search(r"Step `?finetune`? has finished", output)
    assert not re.search(r"\x1b\[[0-9;]*m", output), "ANSI colour codes in the pipeline's output"


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
    # Logged live by the Trainer's MLflow callback inside the step's run
    assert len(client.get_metric_history(run.info.run_id, "loss")) >= 2
    assert [m.step for m in client.get_metric_history(run.info.run_id, "eval_loss")] == [4, 8]
    assert run.data.params["training.mode"] == "qlora" and run.data.params["training.packing"] == "True"
    assert run.data.metrics["resumed_from_step"] == 0


def test_model_version_registered_adapter_only(pipeline_run: dict) -> None:
    client = mlflow.MlflowClient(tracking_uri=pipeline_run["tracking_uri"])
    version = client.get_model_version("drugslm-e2e", pipeline_run["mlflow_version"])
    assert version.run_id == pipeline_run["mlflow_run_id"]
    assert version.tags["base_model_sha256"]
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=version.source, tracking_uri=pipeline_run["tracking_uri"]))
    assert (local / "adapter_config.json").is_file()
    assert (local / "adapter_model.safetensors").is_file()
    assert not list(local.glob("model*.safetensors"))  # the adapter only, never full weights


def test_champion_alias_follows_the_gate(pipeline_run: dict) -> None:
    client = mlflow.MlflowClient(tracking_uri=pipeline_run["tracking_uri"])
    run = client.get_run(pipeline_run["mlflow_run_id"])
    promoted = run.data.tags["gate.promote"] == "true"
    assert run.data.tags["gate.primary_metric"] == "perplexity"
    assert run.data.tags["promotion_decision"] == pipeline_run["decision"]
    assert (pipeline_run["champion_version"] == pipeline_run["mlflow_version"]) is promoted
    if promoted:
        history = json.loads(client.get_registered_model("drugslm-e2e").tags["alias_history.champion"])
        assert history[-1]["action"] == "promote"
        assert str(history[-1]["version"]) == pipeline_run["mlflow_version"]


def test_evaluation_evidence_is_logged(pipeline_run: dict) -> None:
    client = mlflow.MlflowClient(tracking_uri=pipeline_run["tracking_uri"])
    run_id = pipeline_run["mlflow_run_id"]
    metrics = client.get_run(run_id).data.metrics
    low, diff, high = (metrics[f"tuned_vs_base.perplexity.{k}"] for k in ("ci_low", "diff", "ci_high"))
    assert low <= diff <= high
    assert diff < 0  # tuned perplexity below base, with its interval logged
    root = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="", tracking_uri=pipeline_run["tracking_uri"]))
    assert "Gate decision" in (root / "report.html").read_text()
    rows = json.loads((root / "benchmark" / "results_tuned.json").read_text())
    assert rows and {"id", "category", "difficulty", "question", "response", "time_seconds", "timestamp", "scores"} <= set(rows[0])
    assert "tuned_vs_base_perplexity" in pipeline_run


def test_version_names_its_retrieval_index_and_rag_is_measured(pipeline_run: dict) -> None:
    client = mlflow.MlflowClient(tracking_uri=pipeline_run["tracking_uri"])
    version = client.get_model_version("drugslm-e2e", pipeline_run["mlflow_version"])
    assert len(version.tags["retrieval_index_hash"]) == 64 and version.tags["retrieval_index_uri"]
    metrics = client.get_run(pipeline_run["mlflow_run_id"]).data.metrics
    assert metrics["rag.index_chunks"] == 320.0
    assert metrics["rag.recall_at_3"] == 1.0  # the one benchmark question finds its own leaflet section
    for label in ("base", "tuned", "base_rag", "tuned_rag"):
        assert f"rag.{label}.key_fact_recall" in metrics
    assert metrics["rag.tuned_rag.abstain_out_of_corpus"] == 1.0  # semaglutide, rivaroxaban: no leaflet, abstained
