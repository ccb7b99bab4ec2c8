"""`drugslm serve` against a REAL uvicorn server on loopback, a real MLflow registry (SQLite) and
the real 4-bit base model, driven by the official ``openai`` client where it applies.

The adapter is a freshly initialised LoRA (its B matrices are zero, so it answers like the
base model): this tests resolution, hash check, loading, batching and the API, not answer quality.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import mlflow
import openai
import pytest
from typer.testing import CliRunner

from drugslm_core.cli import app as cli_app
from drugslm_core.config import BaseModelSettings, DataSettings, ServingSettings
from drugslm_core.modeling.base_model import provision_base_model
from drugslm_core.registry.loading import alias_version
from drugslm_core.serving.app import ChatMessage, ServedModel, ServerState, create_app, load_served_model
from drugslm_core.serving.auth import ApiKeys
from tests.lora_adapters import save_lora_adapter
from tests.servers import uvicorn_in_thread

MODEL = "drugslm-serving-test"
KEY = "test-key-0123"
QUESTION = [{"role": "user", "content": "What is ibuprofen used for?"}]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("serving")
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    mlflow.set_experiment("serving-test")
    base = provision_base_model(BaseModelSettings())
    adapter_dir = save_lora_adapter(base, root / "adapter")
    client = mlflow.MlflowClient()
    client.create_registered_model(MODEL)
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(adapter_dir), artifact_path="adapter")

    def register(sha: str) -> str:
        version = client.create_model_version(
            MODEL, source=f"runs:/{run.info.run_id}/adapter", run_id=run.info.run_id,
            tags={"base_model_sha256": sha, "domain_tag": "<|domain:test|>", "system_prompt": "Be brief."},
        )
        return str(version.version)

    good = register(base.sha256)  # v1
    client.set_registered_model_alias(MODEL, "champion", good)
    client.set_registered_model_alias(MODEL, "foreign-base", register("0" * 64))  # v2
    client.set_registered_model_alias(MODEL, "next", register(base.sha256))  # v3
    yield root
    mlflow.set_tracking_uri(previous)


@pytest.fixture(scope="module")
def served(registry: Path) -> ServedModel:
    return load_served_model(MODEL, "champion", BaseModelSettings(), DataSettings(), registry / "download")



@contextlib.contextmanager
def running_server(state: ServerState, keys: list[str] | None = None) -> Iterator[str]:
    """``create_app`` under a real uvicorn server on a loopback port, in a thread."""
    with uvicorn_in_thread(create_app(state, ApiKeys(keys or []))) as url:
        yield url


def _client(url: str, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def server(served: ServedModel) -> Iterator[str]:
    with running_server(ServerState(served, ServingSettings()), [KEY, "another-key"]) as url:
        yield url


def test_every_route_but_health_needs_a_key(server: str) -> None:
    for path in ("/healthz", "/health", "/readyz"):
        assert httpx.get(server + path).status_code == 200, path
    ready = httpx.get(server + "/readyz").json()
    assert ready["model"] == f"{MODEL}-v1" and ready["reload_error"] is None
    for method, path in (("GET", "/v1/models"), ("GET", "/metrics"), ("POST", "/v1/chat/completions")):
        for headers in ({}, {"Authorization": "Bearer wrong-key"}, {"Authorization": KEY}):
            response = httpx.request(method, server + path, headers=headers, json={"messages": QUESTION})
            assert response.status_code == 401, (path, headers)
            error = response.json()["error"]
            assert set(error) == {"message", "type", "param", "code"} and error["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        _client(server, "wrong-key").models.list()
    assert httpx.get(server + "/metrics", headers={"Authorization": "Bearer another-key"}).status_code == 200


def test_openapi_schema_describes_the_routes(server: str) -> None:
    """The schema FastAPI builds from the handlers' annotations (the ``/docs`` page reads it)."""
    response = httpx.get(server + "/openapi.json")
    assert response.status_code == 200, response.text[:500]
    paths = response.json()["paths"]
    for path in ("/v1/chat/completions", "/v1/models", "/v1/feedback", "/readyz", "/metrics"):
        assert path in paths, sorted(paths)
    assert httpx.get(server + "/docs").status_code == 200


def test_chat_completion_through_the_openai_client(server: str) -> None:
    client = _client(server)
    assert [m.id for m in client.models.list().data] == [f"{MODEL}-v1"]
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=QUESTION, max_tokens=8)  # type: ignore[arg-type]
    assert raw.headers["X-Model-Version"] == "1"
    completion = raw.parse()
    assert completion.model == f"{MODEL}-v1"
    assert completion.choices[0].message.content.strip()
    assert completion.choices[0].finish_reason in {"stop", "length"}
    assert 1 <= completion.usage.completion_tokens <= 8
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=QUESTION, max_tokens=4)  # type: ignore[arg-type]


def test_stream_equals_the_non_streamed_greedy_answer(server: str) -> None:
    client = _client(server)
    plain = client.chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=16)  # type: ignore[arg-type]
    chunks = list(client.chat.completions.create(
        model=MODEL, messages=QUESTION, max_tokens=16, stream=True, stream_options={"include_usage": True},  # type: ignore[arg-type]
    ))
    assert all(c.object == "chat.completion.chunk" and c.model == f"{MODEL}-v1" for c in chunks)
    deltas = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert len([d for d in deltas if d]) > 1, "the answer came in one piece, not streamed"
    assert "".join(deltas) == plain.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == plain.choices[0].finish_reason
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == plain.usage.completion_tokens
    with httpx.stream("POST", server + "/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"},
                      json={"messages": QUESTION, "max_tokens": 4, "stream": True}) as response:
        lines = [line for line in response.iter_lines() if line]
    assert response.headers["content-type"].startswith("text/event-stream")
    assert lines[-1] == "data: [DONE]" and all(line.startswith("data: ") for line in lines)


def test_stop_strings_cut_the_answer(server: str) -> None:
    client = _client(server)
    full = client.chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=16).choices[0].message.content  # type: ignore[arg-type]
    word = full.split()[2]
    cut = client.chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=16, stop=[word])  # type: ignore[arg-type]
    assert cut.choices[0].message.content == full[: full.index(word)]
    assert cut.choices[0].finish_reason == "stop"


def test_oversized_input_is_413_or_422(served: ServedModel) -> None:
    settings = ServingSettings(max_body_bytes=2_000, max_prompt_tokens=60, max_tokens_limit=32)
    with running_server(ServerState(served, settings), [KEY]) as url:
        auth = {"Authorization": f"Bearer {KEY}"}
        huge = httpx.post(url + "/v1/chat/completions", headers=auth,
                          json={"messages": [{"role": "user", "content": "x" * 5_000}]})
        assert huge.status_code == 413 and huge.json()["error"]["code"] == "request_too_large"
        client = _client(url)
        with pytest.raises(openai.UnprocessableEntityError, match="at most 32"):
            client.chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=33)  # type: ignore[arg-type]
        long_prompt = [{"role": "user", "content": "ibuprofen " * 100}]
        with pytest.raises(openai.UnprocessableEntityError, match="context_length_exceeded|at most 60"):
            client.chat.completions.create(model=MODEL, messages=long_prompt, max_tokens=4)  # type: ignore[arg-type]
        malformed = httpx.post(url + "/v1/chat/completions", headers=auth, json={"messages": []})
        assert malformed.status_code == 400 and malformed.json()["error"]["param"] == "messages"
        no_user = httpx.post(url + "/v1/chat/completions", headers=auth, json={"messages": [{"role": "system", "content": "x"}]})
        assert no_user.status_code == 400 and "user message" in no_user.json()["error"]["message"]


def test_full_queue_is_429_with_retry_after_and_slow_requests_504(served: ServedModel) -> None:
    settings = ServingSettings(max_batch_size=1, max_queue=1, retry_after_s=3)
    with running_server(ServerState(served, settings)) as url:
        def ask(_: int) -> httpx.Response:
            return httpx.post(url + "/v1/chat/completions", json={"messages": QUESTION, "max_tokens": 48}, timeout=120)

        with ThreadPoolExecutor(6) as pool:
            responses = list(pool.map(ask, range(6)))
        statuses = sorted(r.status_code for r in responses)
        assert 429 in statuses and 200 in statuses and set(statuses) <= {200, 429}, statuses
        busy = next(r for r in responses if r.status_code == 429)
        assert busy.headers["Retry-After"] == "3" and busy.json()["error"]["type"] == "rate_limit_error"
    timing_out = ServerState(served, ServingSettings(request_timeout_s=0.2))
    with running_server(timing_out) as url:
        slow = httpx.post(url + "/v1/chat/completions", json={"messages": QUESTION, "max_tokens": 400}, timeout=120)
        assert slow.status_code == 504 and slow.json()["error"]["code"] == "timeout"
        # the engine drops the cancelled request from the batch at its next step, and lives on
        _wait_for(lambda: "drugslm_requests_cancelled_total 1.0" in httpx.get(url + "/metrics").text, "the cancellation", 60)
        assert timing_out.engine.running == 0 and httpx.get(url + "/readyz").status_code == 200


def test_eight_concurrent_clients_are_batched_without_errors(server: str) -> None:
    def client_session(index: int) -> list[str]:
        client = _client(server)
        answers = []
        for turn in range(3):
            question = [{"role": "user", "content": f"Question {index}.{turn}: what is paracetamol?"}]
            if (index + turn) % 2:
                stream = client.chat.completions.create(model=MODEL, messages=question, max_tokens=8, stream=True)  # type: ignore[arg-type]
                answers.append("".join(c.choices[0].delta.content or "" for c in stream if c.choices))
            else:
                answers.append(client.chat.completions.create(model=MODEL, messages=question, max_tokens=8).choices[0].message.content)  # type: ignore[arg-type]
        return answers

    with ThreadPoolExecutor(8) as pool:
        answers = [a for session in pool.map(client_session, range(8)) for a in session]  # raises on any error
    assert len(answers) == 24 and all(a.strip() for a in answers)
    metrics = httpx.get(server + "/metrics", headers={"Authorization": f"Bearer {KEY}"}).text
    assert not re.search(r'drugslm_http_requests_total\{route="/v1/chat/completions",status="5\d\d"\}', metrics)
    single = float(re.search(r'drugslm_batch_size_bucket\{le="1.0"\} (\S+)', metrics).group(1))  # type: ignore[union-attr]
    steps = float(re.search(r"drugslm_batch_size_count (\S+)", metrics).group(1))  # type: ignore[union-attr]
    assert single < steps, "no forward pass ever held more than one sequence"
    for name in ("drugslm_time_to_first_token_seconds_count", "drugslm_generation_tokens_total",
                 "drugslm_num_requests_waiting", 'drugslm_model_info{id="drugslm-serving-test-v1"'):
        assert name in metrics


def test_follows_the_alias_and_survives_a_failed_reload(served: ServedModel, registry: Path) -> None:
    client_ml = mlflow.MlflowClient()
    state = ServerState(served, ServingSettings())
    state.follow_alias(
        lambda: alias_version(MODEL, "champion"),
        lambda version: load_served_model(MODEL, None, BaseModelSettings(), DataSettings(), version=version),
        interval_s=0.3,
    )
    try:
        with running_server(state, [KEY]) as url:
            client = _client(url)

            def in_flight(_: int) -> tuple[str, str]:
                stream = client.chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=40, stream=True)  # type: ignore[arg-type]
                chunks = list(stream)
                return chunks[0].model, "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

            with ThreadPoolExecutor(4) as pool:
                futures = [pool.submit(in_flight, i) for i in range(4)]
                time.sleep(1.0)
                client_ml.set_registered_model_alias(MODEL, "champion", "3")
                results = [f.result() for f in futures]  # an in-flight failure raises here
            assert all(text.strip() for _, text in results)
            assert {model for model, _ in results} <= {f"{MODEL}-v1", f"{MODEL}-v3"}
            _wait_for(lambda: httpx.get(url + "/readyz").json()["version"] == "3", "the server to serve v3")
            raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=QUESTION, max_tokens=4)  # type: ignore[arg-type]
            assert raw.headers["X-Model-Version"] == "3" and raw.parse().model == f"{MODEL}-v3"

            client_ml.set_registered_model_alias(MODEL, "champion", "2")  # trained on another base: cannot load
            _wait_for(lambda: httpx.get(url + "/readyz").json()["reload_error"] is not None, "the failed reload")
            ready = httpx.get(url + "/readyz")
            assert ready.status_code == 200 and ready.json()["version"] == "3"
            assert "v2" in ready.json()["reload_error"] and "base model" in ready.json()["reload_error"]
            answer = client.chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=4)  # type: ignore[arg-type]
            assert answer.model == f"{MODEL}-v3"
            metrics = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {KEY}"}).text
            assert "drugslm_model_reload_failures_total 1.0" in metrics
            assert "drugslm_model_version 3.0" in metrics
    finally:
        client_ml.set_registered_model_alias(MODEL, "champion", "1")


def _wait_for(condition, what: str, timeout: float = 180) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_prompt_uses_the_versions_prompt_format(served: ServedModel) -> None:
    prompt = served.prompt_for([ChatMessage(role="user", content="What is ibuprofen used for?")])
    assert "Be brief." in prompt
    assert "<|domain:test|> What is ibuprofen used for?" in prompt
    assert prompt.endswith("<|im_start|>assistant\n")
    own_system = served.prompt_for(
        [ChatMessage(role="system", content="Answer in French."), ChatMessage(role="user", content="Hi?")]
    )
    assert "Answer in French." in own_system and "Be brief." not in own_system


def test_unknown_alias_and_foreign_base_are_refused(registry: Path) -> None:
    with pytest.raises(LookupError, match="no-such-alias"):
        load_served_model(MODEL, "no-such-alias", BaseModelSettings(), download_dir=registry / "d1")
    with pytest.raises(RuntimeError, match="trained on base model 000000"):
        load_served_model(MODEL, "foreign-base", BaseModelSettings(), download_dir=registry / "d2")


def test_serve_command_says_what_is_missing_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DRUGSLM_API_KEYS", raising=False)
    monkeypatch.delenv("DRUGSLM_API_KEYS_FILE", raising=False)
    runner = CliRunner()
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    no_champion = runner.invoke(cli_app, ["serve", "--tracking-uri", empty, "--config", str(tmp_path / "none.yaml")])
    assert no_champion.exit_code == 1
    ours = [line for line in no_champion.output.splitlines() if line.startswith("drugslm serve:")]
    assert len(ours) == 1 and "make run" in ours[0]  # (MLflow itself logs creating the empty store)
    assert "Traceback" not in no_champion.output
    open_host = runner.invoke(cli_app, ["serve", "--tracking-uri", empty, "--host", "0.0.0.0"])
    assert open_host.exit_code == 2 and "DRUGSLM_API_KEYS" in open_host.output
    assert open_host.output.strip().count("\n") == 0
