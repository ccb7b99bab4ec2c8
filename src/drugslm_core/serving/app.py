"""OpenAI-style chat completions for a registered drugslm model version.

``load_served_model`` resolves an MLflow alias (``champion`` by default) to a
model version, downloads its adapter, checks that this machine's provisioned
base model has the hash the version was trained on, and loads base (4-bit) +
adapter, exactly as evaluation measured it. ``create_app`` serves it:
``GET /health``, ``GET /v1/models``, ``POST /v1/chat/completions``.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from drugslm_core.config import BaseModelSettings, DataSettings
from drugslm_core.data.formatting import conversation
from drugslm_core.evaluation.compare import RegisteredAdapter


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatCompletionRequest(BaseModel):
    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int = Field(default=128, ge=1, le=1024)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)


class ServedModel:
    """A loaded model version and the prompt format it was trained with."""

    def __init__(
        self, name: str, adapter: RegisteredAdapter, model: Any, tokenizer: Any, fallback: DataSettings
    ) -> None:
        self.name = name
        self.adapter = adapter
        self.model = model
        self.tokenizer = tokenizer
        # The version's own prompt format; versions registered without it use the configured one.
        self.system_prompt = adapter.tags.get("system_prompt", fallback.system_prompt)
        self.domain_tag = adapter.tags.get("domain_tag", fallback.domain_tag)
        self._lock = threading.Lock()  # one generation at a time on a CPU model

    @property
    def model_id(self) -> str:
        return f"{self.name}/{self.adapter.version}"

    def prompt_for(self, messages: list[ChatMessage]) -> str:
        """The training prompt format: trained system prompt unless given, domain tag on the question."""
        question = next((m.content for m in reversed(messages) if m.role == "user"), None)
        if question is None:
            raise ValueError("messages need at least one user message")
        system = next((m.content for m in messages if m.role == "system"), self.system_prompt)
        return self.tokenizer.apply_chat_template(
            conversation(question, system, self.domain_tag), tokenize=False, add_generation_prompt=True
        )

    def complete(self, request: ChatCompletionRequest) -> tuple[str, int, int, str]:
        import torch

        prompt = self.prompt_for(request.messages)
        inputs = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        inputs = inputs.to(next(self.model.parameters()).device)
        sampling = {"do_sample": True, "temperature": request.temperature} if request.temperature > 0 else {"do_sample": False}
        with self._lock, torch.no_grad():
            output = self.model.generate(
                **inputs, max_new_tokens=request.max_tokens, pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=self.tokenizer.eos_token_id, **sampling,
            )
        new_tokens = output[0, inputs["input_ids"].shape[1]:]
        finish = "stop" if int(new_tokens[-1]) == self.tokenizer.eos_token_id else "length"
        text = self.tokenizer.decode(new_tokens, skip_special_tokens=True).strip()
        return text, int(inputs["input_ids"].shape[1]), int(new_tokens.shape[0]), finish


def load_served_model(
    model_name: str,
    alias: str,
    base_settings: BaseModelSettings,
    data_settings: DataSettings | None = None,
    download_dir: Path | None = None,
) -> ServedModel:
    """Resolve ``model_name@alias`` in the MLflow registry (tracking URI already set) and load it
    offline, refusing a version trained on another base model."""
    from drugslm_core.registry.loading import load_registered_version

    loaded = load_registered_version(model_name, base_settings, alias=alias, download_dir=download_dir)
    return ServedModel(model_name, loaded.adapter, loaded.model, loaded.tokenizer, data_settings or DataSettings())


def create_app(served: ServedModel) -> Any:
    from fastapi import FastAPI, HTTPException

    app = FastAPI(title="drugslm", description="Drug-information assistant (not medical advice)")

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok", "model": served.model_id}

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": served.model_id, "object": "model", "owned_by": "drugslm"}]}

    @app.post("/v1/chat/completions")
    def chat_completions(request: ChatCompletionRequest) -> dict[str, Any]:
        try:
            text, prompt_tokens, completion_tokens, finish = served.complete(request)
        except ValueError as error:
            raise HTTPException(status_code=400, detail=str(error)) from error
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": served.model_id,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    return app
