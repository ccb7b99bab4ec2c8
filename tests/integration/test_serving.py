"""`drugslm serve`'s app over a real MLflow registry (SQLite) and the real 4-bit base model.

The adapter is a freshly initialised LoRA (its B matrices are zero, so it
answers like the base model): this tests resolution, hash check, loading and
the OpenAI-style API, not answer quality.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from fastapi.testclient import TestClient

from drugslm_core.config import BaseModelSettings, DataSettings
from drugslm_core.modeling.base_model import provision_base_model
from drugslm_core.serving.app import ChatMessage, ServedModel, create_app, load_served_model
from tests.lora_adapters import save_lora_adapter

MODEL = "drugslm-serving-test"


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

    good = register(base.sha256)
    client.set_registered_model_alias(MODEL, "champion", good)
    client.set_registered_model_alias(MODEL, "foreign-base", register("0" * 64))
    yield root
    mlflow.set_tracking_uri(previous)


@pytest.fixture(scope="module")
def served(registry: Path) -> ServedModel:
    return load_served_model(MODEL, "champion", BaseModelSettings(), DataSettings(), registry / "download")


@pytest.fixture(scope="module")
def api(served: ServedModel) -> TestClient:
    return TestClient(create_app(served))


def test_health_names_the_served_version(api: TestClient) -> None:
    response = api.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "model": f"{MODEL}/1"}
    assert api.get("/v1/models").json()["data"][0]["id"] == f"{MODEL}/1"


def test_chat_completion_in_openai_shape(api: TestClient) -> None:
    response = api.post(
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "What is ibuprofen used for?"}], "max_tokens": 8},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion"
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"].strip()
    assert choice["finish_reason"] in {"stop", "length"}
    assert 1 <= body["usage"]["completion_tokens"] <= 8
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]


def test_prompt_uses_the_versions_prompt_format(served: ServedModel) -> None:
    prompt = served.prompt_for([ChatMessage(role="user", content="What is ibuprofen used for?")])
    assert "Be brief." in prompt
    assert "<|domain:test|> What is ibuprofen used for?" in prompt
    assert prompt.endswith("<|im_start|>assistant\n")
    own_system = served.prompt_for(
        [ChatMessage(role="system", content="Answer in French."), ChatMessage(role="user", content="Hi?")]
    )
    assert "Answer in French." in own_system and "Be brief." not in own_system


def test_request_without_user_turn_is_a_400(api: TestClient) -> None:
    response = api.post("/v1/chat/completions", json={"messages": [{"role": "system", "content": "x"}]})
    assert response.status_code == 400
    assert "user message" in response.json()["detail"]


def test_unknown_alias_and_foreign_base_are_refused(registry: Path) -> None:
    with pytest.raises(LookupError, match="no-such-alias"):
        load_served_model(MODEL, "no-such-alias", BaseModelSettings(), download_dir=registry / "d1")
    with pytest.raises(RuntimeError, match="trained on base model 000000"):
        load_served_model(MODEL, "foreign-base", BaseModelSettings(), download_dir=registry / "d2")
