"""The production-shaped stack on loopback, for real: moto S3, `mlflow server`, ZenML server.

`python -m drugslm_ops.stacks.loopback up` starts the three servers on free ports and registers
`drugslm-remote`; the unchanged training pipeline runs on it (tiny budget); its
artifacts must be in the bucket, its MLflow run and model version on the MLflow
server, its run on the ZenML server; `down` must leave no process behind.

Fault: when the `split` step has finished, the S3 server is stopped, left down
for at least 10 s and until ZenML logs that it will retry a failed step, then
started again (`python -m drugslm_ops.stacks.loopback restart-s3 --until-log ...`, objects
replayed). Waiting for the retry line, not a fixed window, makes the fault
certain: on a quiet machine `finetune` may have read its inputs before S3 went
away, and then fails later, when it mirrors a checkpoint or writes its outputs.
ZenML's step retry (`retry:` in configs/local.yaml) runs it again once S3 is
back, and the run completes with every artifact whole in the bucket.

Dashboards, in headless Chromium (tests/browser.py): the run's page on the ZenML
server must draw the DAG with all our steps and render the `validation_report`
HTML visualization; the MLflow UI must show the run's loss, eval_loss and
tuned_eval_perplexity. Screenshots go to $DRUGSLM_SCREENSHOT_DIR (default: the
test's temporary folder). Several minutes on 2 cores.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import boto3
import mlflow
import pytest

from tests.isolated_project import BIN, isolated_project, run_command
from tests.servers import free_port

pytestmark = pytest.mark.stack

TINY = {
    # a checkpoint at step 2, mirrored to the bucket and kept there for the test to find
    "training": {"max_steps": 3, "max_seq_length": 256, "logging_steps": 1, "eval_steps": 2, "keep_checkpoints": True},
    "evaluation": {"max_eval_examples": 8, "generation_samples": 1, "heldout_questions": 2, "max_new_tokens": 8},
    "registry": {"model_name": "drugslm-loopback"},
}



def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().split(") ", 1)[1][0] != "Z"


def _process_groups() -> dict[int, list[int]]:
    """Process group id -> live PIDs in it (from /proc)."""
    groups: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(") ", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                groups.setdefault(int(fields[2]), []).append(int(entry.name))
    return groups


def _bucket_keys(port: int, bucket: str = "drugslm-artifacts") -> list[str]:
    client = boto3.client(
        "s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
        aws_access_key_id="loopback", aws_secret_access_key="loopback",
    )
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def _mlflow_facts(uri: str, run_id: str, model: str, version: str) -> dict:
    client = mlflow.MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    registered = client.get_model_version(model, version)  # promotion is the gate's business, not tested here
    return {"metrics": dict(run.data.metrics), "tags": dict(run.data.tags), "version_run": registered.run_id,
            "experiment_id": run.info.experiment_id}


STEPS = ("base_model", "ingest", "clean", "validate", "quality_gate", "build_dataset", "profile_dataset",
         "split", "finetune", "evaluate", "register")
MLFLOW_METRICS = ("loss", "eval_loss", "tuned_eval_perplexity")


def _dashboards(facts: dict, shots: Path) -> dict:
    """What a person sees in the ZenML dashboard and the MLflow UI (never raises: errors are facts)."""
    import shutil

    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        return {"error": "chromium/chromedriver not installed (make test installs Debian's chromium, chromium-driver)"}
    from tests import browser

    shots.mkdir(parents=True, exist_ok=True)
    seen: dict = {}
    try:
        with browser.chromium() as driver:
            seen["zenml"] = browser.check_zenml_run_page(
                driver, facts["run"]["url"], STEPS, "validation_report", "Data validation (Great Expectations)", shots
            )
            seen["mlflow"] = browser.check_mlflow_run_page(
                driver, facts["summary"]["mlflow_tracking_uri"], facts["mlflow"]["experiment_id"],
                facts["summary"]["mlflow_run_id"], MLFLOW_METRICS, shots,
            )
    except AssertionError as exc:
        seen["error"] = str(exc)
    return seen


RESTART_AFTER = "split"
DOWNTIME_S = 10
RETRY_LINE = r"Sleeping for \d+ seconds before retrying step"

RUN_FACTS = """
import json
from zenml.client import Client
from zenml.utils.dashboard_utils import get_run_url

run = Client().get_pipeline("training_pipeline").last_run
steps = Client().list_run_steps(pipeline_run_id=run.id, size=200, hydrate=True).items
print(json.dumps({
    "status": str(run.status),
    "url": get_run_url(run),
    "step_statuses": sorted([s.name, str(s.status)] for s in steps),
    "artifact_uris": sorted({a.uri for s in steps if str(s.status) == "completed"
                             for versions in s.outputs.values() for a in versions}),
}))
"""


def _run_pipeline_restarting_s3(project: Path, env: dict[str, str], python: str) -> dict:
    """`zenml pipeline run`; when RESTART_AFTER has finished, restart S3 (down DOWNTIME_S seconds)."""
    log_path = project / "pipeline.log"
    command = [str(BIN / "zenml"), "pipeline", "run", "pipelines.training.training_pipeline", "-c", "configs/test.yaml"]
    marker = re.compile(rf"Step `?{RESTART_AFTER}`? has finished")
    ansi = re.compile(r"\x1b\[[0-9;]*m")  # ZenML colours the step name when it logs to a file too
    facts: dict = {}
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            while process.poll() is None and not marker.search(ansi.sub("", log_path.read_text(errors="replace"))):
                time.sleep(0.5)
            if process.poll() is None:
                facts["restart"] = run_command(
                    [python, "-m", "drugslm_ops.stacks.loopback", "restart-s3", "--downtime", str(DOWNTIME_S),
                     "--until-log", str(log_path), "--until", RETRY_LINE], project, env
                )
            returncode = process.wait(timeout=1800)
        finally:
            if process.poll() is None:
                process.kill()
    output = ansi.sub("", log_path.read_text(errors="replace"))
    if returncode != 0:
        raise AssertionError(f"pipeline run failed ({returncode}) after the S3 restart:\n{output[-8000:]}")
    facts["log"] = output
    return facts


@pytest.fixture(scope="module")
def loopback(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("loopback")
    ports = {"S3_PORT": free_port(), "MLFLOW_PORT": free_port(), "ZENML_PORT": free_port(),
             "POSTGRES_PORT": free_port()}
    extra = {f"DRUGSLM_LOOPBACK__{k}": str(v) for k, v in ports.items()}
    extra["DRUGSLM_LOOPBACK__STATE_DIR"] = str(base / "state")
    project, env = isolated_project(base, TINY, extra)
    python = str(BIN / "python")
    facts: dict = {"ports": ports}
    try:
        run_command([python, "-m", "drugslm_ops.stacks.loopback", "up"], project, env)
        facts["pids"] = json.loads((base / "state" / "pids.json").read_text())
        facts["fault"] = _run_pipeline_restarting_s3(project, env, python)
        facts["pids_after_restart"] = json.loads((base / "state" / "pids.json").read_text())
        facts["run"] = json.loads(run_command([python, "-c", RUN_FACTS], project, env).splitlines()[-1])
        summary = json.loads(run_command([python, "-m", "drugslm_ops.stacks.summary", "--json"], project, env).splitlines()[-1])
        facts["summary"] = summary
        facts["status"] = run_command([python, "-m", "drugslm_ops.stacks.loopback", "status"], project, env)
        # moto keeps the bucket in memory: read everything while the servers are up.
        facts["keys"] = _bucket_keys(ports["S3_PORT"])
        facts["mlflow"] = _mlflow_facts(
            summary["mlflow_tracking_uri"], summary["mlflow_run_id"], "drugslm-loopback", summary["mlflow_version"]
        )
        shots = Path(os.environ.get("DRUGSLM_SCREENSHOT_DIR") or base / "screenshots")
        facts["dashboards"] = _dashboards(facts, shots)
    finally:
        facts["down"] = run_command([python, "-m", "drugslm_ops.stacks.loopback", "down"], project, env)
    facts["after_down"] = run_command([python, "-m", "drugslm_ops.stacks.loopback", "status"], project, env)
    return facts


def test_all_three_servers_were_up(loopback: dict) -> None:
    assert set(loopback["pids"]) == {"s3", "mlflow", "zenml"}
    assert loopback["status"].count("alive, answering") == 3, loopback["status"]
    assert "postgres running on 127.0.0.1" in loopback["status"], loopback["status"]  # MLflow's backend store


def test_pipeline_ran_on_the_remote_stack(loopback: dict) -> None:
    summary = loopback["summary"]
    assert summary["status"] == "completed"  # read back from the ZenML server
    assert summary["mlflow_tracking_uri"] == f"http://127.0.0.1:{loopback['ports']['MLFLOW_PORT']}"


def test_zenml_artifacts_are_in_the_bucket(loopback: dict) -> None:
    zenml_keys = [k for k in loopback["keys"] if k.startswith("zenml/")]
    for step in ("ingest", "validate", "build_dataset", "split", "finetune", "evaluate", "register"):
        assert any(k.startswith(f"zenml/{step}/") for k in zenml_keys), step
    assert any(k.startswith("zenml/finetune/adapter/") and k.endswith("adapter_model.safetensors") for k in zenml_keys)


def test_training_checkpoints_are_in_the_bucket(loopback: dict) -> None:
    checkpoints = [k for k in loopback["keys"] if k.startswith("zenml/checkpoints/")]
    assert any(k.endswith("/checkpoint-2.complete") for k in checkpoints), checkpoints
    assert any(k.endswith("/checkpoint-2/trainer_state.json") for k in checkpoints)
    assert any(k.endswith("/checkpoint-2/optimizer.pt") for k in checkpoints)


def test_mlflow_run_and_version_live_on_the_server_with_artifacts_in_s3(loopback: dict) -> None:
    facts = loopback["mlflow"]
    assert {"base_eval_perplexity", "tuned_eval_perplexity", "train_loss"} <= set(facts["metrics"])
    assert facts["tags"]["zenml_run_id"] == loopback["summary"]["zenml_run_id"]
    assert facts["version_run"] == loopback["summary"]["mlflow_run_id"]
    run_id = loopback["summary"]["mlflow_run_id"]
    assert any(k.startswith("mlflow/") and f"/{run_id}/artifacts/adapter/" in k for k in loopback["keys"])


def test_s3_restart_mid_run_is_retried_and_the_run_completes(loopback: dict) -> None:
    fault = loopback["fault"]
    assert "restart" in fault, f"the run ended before `{RESTART_AFTER}` finished"
    down_for = re.search(r"after ([\d.]+) s down", fault["restart"])
    assert down_for and float(down_for.group(1)) >= DOWNTIME_S, fault["restart"]
    assert loopback["pids_after_restart"]["s3"] != loopback["pids"]["s3"]  # a new S3 process
    run = loopback["run"]
    assert run["status"] == "completed"
    retried = [name for name, status in run["step_statuses"] if status == "retried"]
    assert retried, f"no step was retried: {run['step_statuses']}"
    assert "Sleeping for 5 seconds before retrying step" in fault["log"]
    completed = {name for name, status in run["step_statuses"] if status == "completed"}
    assert set(retried) <= completed  # each retried step then completed


def test_no_half_written_artifact_after_the_restart(loopback: dict) -> None:
    """Every output of every completed step is in the bucket (the restarted server replayed them)."""
    prefix = "s3://drugslm-artifacts/"
    keys = loopback["keys"]
    missing = [uri for uri in loopback["run"]["artifact_uris"]
               if not any(key == uri[len(prefix):] or key.startswith(uri[len(prefix):] + "/") for key in keys)]
    assert loopback["run"]["artifact_uris"] and not missing, missing


def test_zenml_dashboard_shows_the_run_dag_and_an_html_visualization(loopback: dict) -> None:
    seen = loopback["dashboards"]
    assert "zenml" in seen, seen.get("error")
    zenml = seen["zenml"]
    assert zenml["auth_scheme"] == "NO_AUTH"  # ZenML's local server; the helper also handles a login form
    assert zenml["steps_found"] == list(STEPS)
    assert "Data validation (Great Expectations)" in zenml["html_rendered_text"]
    for key in ("dag_screenshot", "html_screenshot"):
        assert Path(zenml[key]).stat().st_size > 20_000, key  # a drawn page, not a blank one


def test_mlflow_ui_shows_the_run_metrics(loopback: dict) -> None:
    seen = loopback["dashboards"]
    assert "mlflow" in seen, seen.get("error")
    assert set(seen["mlflow"]["metric_values"]) == set(MLFLOW_METRICS)
    assert set(MLFLOW_METRICS) <= set(seen["mlflow"]["chart_titles"])
    for key in ("overview_screenshot", "metrics_screenshot"):
        assert Path(seen["mlflow"][key]).stat().st_size > 20_000, key


def test_stack_down_leaves_no_process(loopback: dict) -> None:
    assert "mlflow" in loopback["down"] and "s3" in loopback["down"] and "zenml" in loopback["down"]
    for name, pid in {**loopback["pids"], "s3 (restarted)": loopback["pids_after_restart"]["s3"]}.items():
        assert not _alive(pid), f"{name} (pid {pid}) still running after stack-down"
        assert not _process_groups().get(pid), f"{name}: workers of process group {pid} left running"
    assert loopback["after_down"].count("not answering") == 3, loopback["after_down"]
    assert "postgres" in loopback["down"] and "postgres stopped" in loopback["after_down"], loopback["after_down"]
