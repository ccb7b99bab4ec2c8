"""The monitoring pipeline through `zenml pipeline run`: a shift in the served questions starts a
retraining run whose recorded reason names it (on the run and on the version it registers).

A tiny training run makes the champion whose training data (found through lineage) is the
reference; off-domain questions in a feedback export are the shift; the trigger starts the
training pipeline as a subprocess on the same stack, as ``monitoring.launch: subprocess`` does.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
import yaml

from tests.e2e.test_training_pipeline import TINY
from tests.isolated_project import BIN, isolated_project, run_command, run_training_pipeline

pytestmark = pytest.mark.e2e

MODEL = "drugslm-e2e-monitoring"
PLACES = ["Paris", "Rome", "Lisbon", "Tokyo", "Cairo", "Lima", "Oslo", "Quito", "Porto", "Madrid"]
TOPICS = [
    "What is the cheapest way to travel from {a} to {b} by train in week {i}?",
    "Which museums in {a} are open on Sunday mornings in week {i}?",
    "What will the weather be like in {a} during week {i}?",
    "Which football team from {a} won the league in season {i}?",
]

RUN_INFO = """
import json, sys
from zenml.client import Client
client = Client()
runs = client.list_pipeline_runs(sort_by="asc:created", size=50).items
out = []
for run in runs:
    run = client.get_pipeline_run(run.id)
    item = {"id": str(run.id), "pipeline": run.pipeline.name, "status": str(run.status.value),
            "tags": sorted(t.name for t in run.tags), "metadata": {k: str(v) for k, v in run.run_metadata.items()}}
    if run.pipeline.name == "monitoring_pipeline":
        monitor = run.steps["monitor"]
        item["monitor_metadata"] = {k: str(v) for k, v in monitor.run_metadata.items()}
        item["report"] = str(monitor.outputs["monitoring_report"][0].load())
        item["retraining_run"] = run.steps["retrain"].outputs["retraining_run"][0].load()
    out.append(item)
print(json.dumps(out))
"""


def served_export(path: Path, rows: int = 120) -> None:
    lines = []
    for i in range(rows):
        question = TOPICS[i % len(TOPICS)].format(a=PLACES[i % 10], b=PLACES[(i * 3 + 1) % 10], i=i)
        lines.append(json.dumps({
            "trace_id": f"t{i}", "request_id": f"r{i}", "created_at": "2026-11-20T10:00:00+00:00",
            "model_version": f"{MODEL}-v1", "question": question, "answer": "I can only answer questions about medicines.",
            "citations": [], "rating": None, "correction": None, "reason": None, "reviewer_role": None,
        }))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("e2e-monitoring")
    export = base / "served-2026-11.jsonl"
    served_export(export)
    project, env = isolated_project(base, {**TINY, "registry": {"model_name": MODEL}})
    tracking_uri = run_command([str(BIN / "python"), "-m", "drugslm_ops.stacks.local"], project, env).strip().splitlines()[-1]
    run_training_pipeline(project, env)

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    first = max(client.search_model_versions(f"name = '{MODEL}'"), key=lambda v: int(v.version))
    if first.aliases != ["champion"] and "champion" not in first.aliases:
        # The tiny run's gate may decline it against the base model; the monitoring under test
        # needs a champion whose training data is the reference, so the test promotes it.
        from drugslm_core.registry.aliases import promote_version

        promote_version(client, MODEL, "champion", str(first.version), "e2e monitoring test: a champion to monitor")

    config = yaml.safe_load((project / "configs" / "test.yaml").read_text())
    config["parameters"]["config"]["monitoring"] = {
        "served_questions": str(export), "launch": "subprocess", "training_config": "configs/test.yaml",
        "min_new_records": 100_000, "min_feedback_rows": 100_000,
    }
    monitoring_config = {"enable_cache": False, "parameters": config["parameters"]}
    (project / "configs" / "test-monitoring.yaml").write_text(yaml.safe_dump(monitoring_config))
    output = run_command(
        [str(BIN / "zenml"), "pipeline", "run", "pipelines.monitoring.monitoring_pipeline", "-c", "configs/test-monitoring.yaml"],
        project, env, with_stderr=True,
    )
    runs = json.loads(run_command([str(BIN / "python"), "-c", RUN_INFO], project, env).strip().splitlines()[-1])
    return {"runs": runs, "output": output, "tracking_uri": tracking_uri, "champion": str(first.version)}


def test_shift_is_reported_and_triggers(monitored: dict) -> None:
    [monitoring] = [r for r in monitored["runs"] if r["pipeline"] == "monitoring_pipeline"]
    assert monitoring["status"] == "completed"
    assert monitoring["monitor_metadata"]["retrain"] == "True"
    reason = monitoring["monitor_metadata"]["reason"]
    assert "text drift" in reason, reason
    assert "RETRAIN: text drift" in monitoring["report"] and "<html" in monitoring["report"].lower()
    assert f"champion v{monitored['champion']}" in monitoring["report"]


def test_retraining_run_records_the_reason(monitored: dict) -> None:
    [monitoring] = [r for r in monitored["runs"] if r["pipeline"] == "monitoring_pipeline"]
    training = [r for r in monitored["runs"] if r["pipeline"] == "training_pipeline"]
    assert len(training) == 2, [(r["pipeline"], r["tags"]) for r in monitored["runs"]]
    first, retrained = training
    assert "retrain" not in first["tags"] and "retrain" in retrained["tags"]
    assert retrained["status"] == "completed"
    assert monitoring["retraining_run"] == retrained["id"]
    assert retrained["metadata"]["retrain_reason"] == monitoring["monitor_metadata"]["reason"]


def test_registered_version_carries_the_reason(monitored: dict) -> None:
    [monitoring] = [r for r in monitored["runs"] if r["pipeline"] == "monitoring_pipeline"]
    retrained = [r for r in monitored["runs"] if r["pipeline"] == "training_pipeline"][-1]
    client = mlflow.MlflowClient(tracking_uri=monitored["tracking_uri"])
    [version] = client.search_model_versions(f"tags.zenml_run_id = '{retrained['id']}'")
    assert str(version.version) != monitored["champion"]
    assert version.tags["retrain_reason"] == monitoring["monitor_metadata"]["reason"][:5000]
