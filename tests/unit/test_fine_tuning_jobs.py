"""The fine-tune job API's core: request validation against the settings model, the status mapping.
(The HTTP round trip with real ZenML runs: tests/e2e/test_fine_tuning_jobs.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from drugslm_core.config import FineTuningSettings
from drugslm_core.serving.fine_tuning import FineTuneJobs, JobError, JobRequest, openai_status, pid_alive


@pytest.fixture
def jobs(tmp_path: Path) -> FineTuneJobs:
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "run.yaml").write_text(yaml.safe_dump({
        "enable_cache": False,
        "parameters": {"config": {"training": {"max_steps": 40, "learning_rate": 0.0003},
                                  "registry": {"model_name": "drugslm"}}},
    }))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "qa.jsonl").write_text('{"question": "q", "answer": "a"}\n')
    (tmp_path / "secret.txt").write_text("not data\n")
    (tmp_path / "data" / "escape").symlink_to(tmp_path / "secret.txt")
    return FineTuneJobs(FineTuningSettings(project_root=tmp_path, run_config=Path("configs/run.yaml")), env={})


def test_overrides_and_training_file_are_merged_into_the_run_config(jobs: FineTuneJobs) -> None:
    document, settings = jobs.validate(JobRequest(
        training_file="data/qa.jsonl", seed=7, config={"training": {"max_steps": 5}, "evaluation": {"max_new_tokens": 8}},
    ))
    values = document["parameters"]["config"]
    assert values["training"] == {"max_steps": 5, "learning_rate": 0.0003, "seed": 7}
    assert values["data"]["files"] == [{"path": str(jobs.root / "data" / "qa.jsonl")}]
    assert document["enable_cache"] is False
    assert settings.training.max_steps == 5 and settings.evaluation.max_new_tokens == 8


@pytest.mark.parametrize(("request_", "param", "code"), [
    (JobRequest(config={"registry": {"model_name": "x"}}), "config.registry.model_name", "override_not_allowed"),
    (JobRequest(config={"training": {"max_steps": "many"}}), "config.training.max_steps", None),
    (JobRequest(training_file="secret.txt"), "training_file", "training_file_not_allowed"),
    (JobRequest(training_file="data/escape"), "training_file", "training_file_not_allowed"),  # a link out of data/
    (JobRequest(training_file="/etc/passwd"), "training_file", "training_file_not_allowed"),
    (JobRequest(training_file="data/none.jsonl"), "training_file", "training_file_not_found"),
    (JobRequest(model="gpt-4o-mini"), "model", "model_not_found"),
])
def test_bad_requests_name_the_field(jobs: FineTuneJobs, request_: JobRequest, param: str, code: str | None) -> None:
    with pytest.raises(JobError) as raised:
        jobs.validate(request_)
    assert raised.value.status == 400 and raised.value.param == param
    assert code is None or raised.value.code == code


def test_a_missing_run_config_is_a_server_error(jobs: FineTuneJobs) -> None:
    (jobs.root / "configs" / "run.yaml").unlink()
    with pytest.raises(JobError, match="fine_tuning.run_config") as raised:
        jobs.validate(JobRequest())
    assert raised.value.status == 500


@pytest.mark.parametrize(("zenml", "done", "cancel", "expected"), [
    (None, False, False, "validating_files"),
    ("initializing", False, False, "queued"),
    ("running", False, False, "running"),
    ("retrying", False, False, "running"),
    ("stopping", False, True, "running"),
    ("completed", True, False, "succeeded"),
    ("failed", True, False, "failed"),
    ("failed", True, True, "cancelled"),
    ("stopped", True, True, "cancelled"),
    ("running", True, False, "failed"),  # the worker died under a running run
    ("running", True, True, "cancelled"),
    (None, True, False, "failed"),
])
def test_openai_status_from_zenml_status(zenml: str | None, done: bool, cancel: bool, expected: str) -> None:
    assert openai_status(zenml, done, cancel) == expected


def test_pid_alive_counts_a_zombie_as_gone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    while Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        time.sleep(0.01)  # until it has exited but is not reaped yet: a zombie
    assert not pid_alive(child.pid)
    child.wait()
    assert not pid_alive(child.pid) and pid_alive(os.getpid())


def test_create_app_mounts_the_job_routes_behind_its_keys(jobs: FineTuneJobs) -> None:
    from types import SimpleNamespace

    from fastapi.testclient import TestClient

    from drugslm_core.config import ServingSettings
    from drugslm_core.serving.app import create_app
    from drugslm_core.serving.auth import ApiKeys
    from drugslm_core.serving.metrics import ServerMetrics

    # Outside its lifespan create_app reads only the state's settings and metrics: no model needed here.
    state = SimpleNamespace(settings=ServingSettings(), metrics=ServerMetrics())
    client = TestClient(create_app(state, ApiKeys(["k1"]), jobs=jobs))  # type: ignore[arg-type]
    refused = client.get("/v1/fine_tuning/jobs")
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    listed = client.get("/v1/fine_tuning/jobs", headers={"Authorization": "Bearer k1"})
    assert listed.status_code == 200 and listed.json() == {"object": "list", "data": [], "has_more": False}
    bad = client.post("/v1/fine_tuning/jobs", headers={"Authorization": "Bearer k1"}, json={"config": {"registry": {"model_name": "x"}}})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "config.registry.model_name"
    without = TestClient(create_app(state, ApiKeys(["k1"])))  # type: ignore[arg-type]
    assert without.get("/v1/fine_tuning/jobs", headers={"Authorization": "Bearer k1"}).status_code == 404
