"""``/v1/fine_tuning/jobs`` against a REAL uvicorn server on loopback, starting REAL ZenML runs of
the training pipeline (tiny budget) in worker processes of a temporary ZenML repository
(tests/isolated_project.py); MLflow is the SQLite store of that repository's local stack.

One job runs to its end (module-scoped); a second one is cancelled soon after it starts.
The router is mounted alone on a FastAPI app (``create_app`` includes the same router with the
same keys, but needs a loaded model, which the jobs API does not use).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import mlflow
import openai
import pytest
from fastapi import FastAPI

from drugslm_core.config import FineTuningSettings
from drugslm_core.serving.auth import ApiKeys
from drugslm_core.serving.fine_tuning import FineTuneJobs, pid_alive
from drugslm_core.serving.jobs import fine_tuning_router
from tests.isolated_project import BIN, isolated_project, run_command
from tests.servers import uvicorn_in_thread

pytestmark = pytest.mark.e2e

KEY = "jobs-key-0123"
AUTH = {"Authorization": f"Bearer {KEY}"}
TINY = {
    "training": {"max_steps": 8, "learning_rate": 0.0005, "max_seq_length": 256, "logging_steps": 2, "eval_steps": 4},
    "evaluation": {"max_eval_examples": 16, "generation_samples": 1, "heldout_questions": 2, "max_new_tokens": 16},
    "registry": {"model_name": "drugslm-jobs"},
}
TERMINAL = {"succeeded", "failed", "cancelled"}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("jobs")
    root, env = isolated_project(base, TINY)
    tracking_uri = run_command([str(BIN / "python"), "-m", "drugslm_ops.stacks.local"], root, env).strip().splitlines()[-1]
    (root / "data").mkdir()
    (root / "data" / "extra_qa.jsonl").write_text(json.dumps({
        "question": "How should metformin tablets be stored?",
        "answer": "Store metformin tablets at room temperature, away from moisture and heat.",
    }) + "\n")
    (base / "outside.jsonl").write_text("{}\n")
    return {"root": root, "env": env, "tracking_uri": tracking_uri, "base": base}


@pytest.fixture(scope="module")
def server(project: dict[str, Any]) -> Iterator[tuple[str, FineTuneJobs]]:
    settings = FineTuningSettings(project_root=project["root"], run_config=Path("configs/test.yaml"),
                                  state_dir=project["base"] / "jobs", max_concurrent=1, cancel_grace_s=120)
    jobs = FineTuneJobs(settings, env=project["env"])
    app = FastAPI()
    app.include_router(fine_tuning_router(jobs, ApiKeys([KEY])))
    with uvicorn_in_thread(app) as url:
        yield url, jobs
    for job in jobs.list(limit=100)["data"]:  # a failed test must not leave a training worker behind
        if job["worker"]["alive"]:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(job["worker"]["pid"], signal.SIGKILL)


def _zenml_run(project: dict[str, Any], run_id: str) -> dict[str, str]:
    """What ZenML itself says about a run (its own client, in the test repository)."""
    code = ("import json, sys; from zenml.client import Client; r = Client().get_pipeline_run(sys.argv[1]); "
            "print(json.dumps({'id': str(r.id), 'name': r.name, 'status': r.status.value}))")
    out = run_command([str(BIN / "python"), "-c", code, run_id], project["root"], project["env"])
    return json.loads(out.strip().splitlines()[-1])


def _wait(url: str, job_id: str, until: set[str], timeout_s: float = 3600) -> list[dict[str, Any]]:
    seen = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        response = httpx.get(f"{url}/v1/fine_tuning/jobs/{job_id}", headers=AUTH, timeout=60)
        assert response.status_code == 200, response.text
        seen.append(response.json())
        if seen[-1]["status"] in until:
            return seen
        time.sleep(2)
    raise AssertionError(f"job {job_id} still {seen[-1]['status']} after {timeout_s:g} s: {seen[-1]}")


@pytest.fixture(scope="module")
def finished_job(server: tuple[str, FineTuneJobs]) -> dict[str, Any]:
    url, _ = server
    request = {"model": "drugslm-jobs", "suffix": "tiny",
               "config": {"training": {"max_steps": 2, "eval_steps": 2}, "evaluation": {"max_eval_examples": 8}}}
    created = httpx.post(f"{url}/v1/fine_tuning/jobs", headers=AUTH, json=request, timeout=300)
    assert created.status_code == 200, created.text
    over_limit = httpx.post(f"{url}/v1/fine_tuning/jobs", headers=AUTH, json=request, timeout=300)
    seen = _wait(url, created.json()["id"], TERMINAL)
    return {"created": created.json(), "over_limit": over_limit, "seen": seen, "final": seen[-1]}


def test_every_job_route_needs_a_key(server: tuple[str, FineTuneJobs]) -> None:
    url, _ = server
    routes = [("GET", "/v1/fine_tuning/jobs"), ("POST", "/v1/fine_tuning/jobs"),
              ("GET", "/v1/fine_tuning/jobs/some-id"), ("POST", "/v1/fine_tuning/jobs/some-id/cancel")]
    for method, path in routes:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
            response = httpx.request(method, url + path, headers=headers, json={})
            assert response.status_code == 401, (method, path, headers)
            assert response.headers["WWW-Authenticate"] == "Bearer"
            assert response.json()["error"]["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0).fine_tuning.jobs.list()


def test_bad_requests_are_refused_before_anything_runs(server: tuple[str, FineTuneJobs], project: dict[str, Any]) -> None:
    url, jobs = server
    post = lambda body: httpx.post(f"{url}/v1/fine_tuning/jobs", headers=AUTH, json=body, timeout=60)  # noqa: E731
    cases = [
        ({"training_file": str(project["base"] / "outside.jsonl")}, "training_file", "training_file_not_allowed"),
        ({"training_file": "data/../../outside.jsonl"}, "training_file", "training_file_not_allowed"),
        ({"training_file": "data/missing.jsonl"}, "training_file", "training_file_not_found"),
        ({"config": {"registry": {"model_name": "other"}}}, "config.registry.model_name", "override_not_allowed"),
        ({"config": {"training": {"mode": "bogus"}}}, "config.training.mode", None),
        ({"model": "gpt-4o-mini"}, "model", "model_not_found"),
        ({"suffix": "Not Valid!"}, "suffix", None),
        ({"epochs": 3}, "epochs", None),
    ]
    for body, param, code in cases:
        response = post(body)
        assert response.status_code == 400, (body, response.text)
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error" and error["param"] == param, (body, error)
        assert code is None or error["code"] == code, (body, error)
    assert not jobs.state_dir.exists() or not any(jobs.state_dir.iterdir()), "a refused request left a job behind"
    missing = httpx.get(f"{url}/v1/fine_tuning/jobs/no-such-job", headers=AUTH)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "job_not_found"


def test_job_id_is_the_zenml_run_id(finished_job: dict[str, Any], project: dict[str, Any]) -> None:
    created = finished_job["created"]
    assert created["object"] == "fine_tuning.job"
    assert created["status"] in {"queued", "running"}
    assert created["run_name"].startswith("fine-tune-tiny-") and created["suffix"] == "tiny"
    assert created["hyperparameters"]["max_steps"] == 2  # the request's override
    zenml_run = _zenml_run(project, created["id"])
    assert zenml_run["id"] == created["id"] and zenml_run["name"] == created["run_name"]
    assert zenml_run["status"] == "completed"


def test_job_runs_and_succeeds_with_metrics_and_the_gate_decision(finished_job: dict[str, Any],
                                                                  project: dict[str, Any]) -> None:
    statuses = [job["status"] for job in finished_job["seen"]]
    assert "running" in statuses, statuses
    final = finished_job["final"]
    assert final["status"] == "succeeded", final
    assert final["error"] is None and final["zenml_status"] == "completed"
    assert final["finished_at"] >= final["created_at"]
    deadline = time.monotonic() + 120  # the worker writes its last status after ZenML's, then exits
    while pid_alive(final["worker"]["pid"]) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not pid_alive(final["worker"]["pid"]), "the worker outlived its run"
    metrics = final["metrics"]
    for name in ("train_loss", "base_eval_perplexity", "tuned_eval_perplexity", "relative_improvement"):
        assert name in metrics, (name, sorted(metrics))
    gate = final["gate"]
    assert gate["primary_metric"] == "perplexity" and gate["explanation"] and isinstance(gate["promote"], bool)
    assert final["registered_version"].startswith("drugslm-jobs-v")
    assert final["fine_tuned_model"] == (final["registered_version"] if gate["promote"] else None)
    # the same numbers as the MLflow run the job's link names
    client = mlflow.MlflowClient(tracking_uri=project["tracking_uri"])
    run_id = final["links"]["mlflow"].rsplit(" ", 1)[-1]
    run = client.get_run(run_id)
    assert run.data.tags["zenml_run_id"] == final["id"]
    assert run.data.params["training.max_steps"] == "2"
    assert run.data.metrics["tuned_eval_perplexity"] == pytest.approx(metrics["tuned_eval_perplexity"])
    assert run.data.tags["gate.explanation"] == gate["explanation"]
    # metrics so far: some poll while the run was going already saw the live training loss
    running = [job for job in finished_job["seen"] if job["status"] == "running" and job["metrics"]]
    assert not running or "loss" in running[-1]["metrics"] or "train_loss" in running[-1]["metrics"]


def test_a_second_job_over_the_limit_is_429(finished_job: dict[str, Any]) -> None:
    response = finished_job["over_limit"]
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert error["type"] == "rate_limit_error" and error["code"] == "too_many_jobs"


def test_openai_client_retrieves_and_lists(finished_job: dict[str, Any], server: tuple[str, FineTuneJobs]) -> None:
    url, _ = server
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0, timeout=60)
    job = client.fine_tuning.jobs.retrieve(finished_job["final"]["id"])
    assert job.id == finished_job["final"]["id"] and job.status == "succeeded"
    assert job.object == "fine_tuning.job" and job.fine_tuned_model == finished_job["final"]["fine_tuned_model"]
    listed = client.fine_tuning.jobs.list(limit=10)
    assert finished_job["final"]["id"] in [j.id for j in listed.data]


def test_cancel_stops_the_run_and_its_worker(finished_job: dict[str, Any], server: tuple[str, FineTuneJobs],
                                             project: dict[str, Any]) -> None:
    url, _ = server  # after the finished job: the one job slot is free again
    created = httpx.post(f"{url}/v1/fine_tuning/jobs", headers=AUTH, timeout=300,
                         json={"training_file": "data/extra_qa.jsonl", "suffix": "cancel-me"})
    assert created.status_code == 200, created.text
    job = created.json()
    assert job["training_file"] == "data/extra_qa.jsonl"
    _wait(url, job["id"], {"running"} | TERMINAL, timeout_s=300)
    cancelled = httpx.post(f"{url}/v1/fine_tuning/jobs/{job['id']}/cancel", headers=AUTH, timeout=300)
    assert cancelled.status_code == 200, cancelled.text
    body = cancelled.json()
    assert body["status"] == "cancelled", body
    assert not body["worker"]["alive"] and not pid_alive(job["worker"]["pid"])
    assert _zenml_run(project, job["id"])["status"] == "stopped"
    listed = httpx.get(f"{url}/v1/fine_tuning/jobs", headers=AUTH).json()
    assert [j["id"] for j in listed["data"]][:2] == [job["id"], finished_job["final"]["id"]]  # newest first
    assert listed["data"][0]["status"] == "cancelled"
    again = httpx.post(f"{url}/v1/fine_tuning/jobs/{job['id']}/cancel", headers=AUTH)
    assert again.status_code == 400 and again.json()["error"]["code"] == "job_finished"
