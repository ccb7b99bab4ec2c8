"""A registered model version ready to serve: loaded offline, with the prompt format it was trained with.

``load_served_model`` resolves a version (or an alias such as ``champion``) in the MLflow
registry, downloads its adapter, checks that this machine's provisioned base model has the
hash the version was trained on, and loads base (4-bit) + adapter, exactly as evaluation
measured it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from drugslm_core.config import BaseModelSettings, DataSettings, RetrievalSettings
from drugslm_core.data.formatting import conversation
from drugslm_core.registry.loading import RegisteredAdapter
from drugslm_core.retrieval.search import Retriever
from drugslm_core.serving.engine import EngineModel
from drugslm_core.serving.grounding import version_retriever
from drugslm_core.serving.protocol import ChatMessage


class ServedModel:
    """A loaded model version and the prompt format it was trained with."""

    def __init__(
        self, name: str, adapter: RegisteredAdapter, model: Any, tokenizer: Any, fallback: DataSettings,
        retriever: Retriever | None = None,
    ) -> None:
        self.name = name
        self.adapter = adapter
        self.model = model
        self.tokenizer = tokenizer
        # The version's own prompt format; versions registered without it use the configured one.
        self.system_prompt = adapter.tags.get("system_prompt", fallback.system_prompt)
        self.domain_tag = adapter.tags.get("domain_tag", fallback.domain_tag)
        self.engine_model = EngineModel(model, tokenizer, self.version)
        self.retriever = retriever
        """Over the retrieval index this version was evaluated with (``None``: served without retrieval)."""

    @property
    def version(self) -> str:
        return str(self.adapter.version)

    @property
    def model_id(self) -> str:
        """The name clients see in ``model`` (``drugslm-v3``): one name per weights, never reused."""
        return model_id(self.name, self.version)

    def prompt_for(self, messages: list[ChatMessage]) -> str:
        """The training prompt format: trained system prompt unless given, domain tag on the question."""
        question = next((m.text for m in reversed(messages) if m.role == "user"), None)
        if question is None:
            raise ValueError("messages need at least one user message")
        system = next((m.text for m in messages if m.role in {"system", "developer"}), self.system_prompt)
        return self.tokenizer.apply_chat_template(
            conversation(question, system, self.domain_tag), tokenize=False, add_generation_prompt=True
        )

    def prompt_ids(self, messages: list[ChatMessage]) -> list[int]:
        return list(self.tokenizer(self.prompt_for(messages), add_special_tokens=False)["input_ids"])


def model_id(name: str, version: str) -> str:
    return f"{name}-v{version}"


def load_served_model(
    model_name: str,
    alias: str | None,
    base_settings: BaseModelSettings,
    data_settings: DataSettings | None = None,
    download_dir: Path | None = None,
    *,
    version: str | None = None,
    compute_dtype: str = "bfloat16",
    retrieval: RetrievalSettings | None = None,
) -> ServedModel:
    """Resolve ``model_name@alias`` (or ``version``) in the MLflow registry (tracking URI already set)
    and load it offline, refusing a version trained on another base model.

    Raises ``LookupError`` when the model, alias or version does not exist."""
    from drugslm_core.registry.loading import load_registered_version

    # Once loaded, the weights live in memory: the downloaded copy is removed (every reload of the
    # alias watcher would otherwise leave one more adapter, or whole model, in the temp folder).
    with tempfile.TemporaryDirectory(prefix="drugslm-serve-") as scratch:
        loaded = load_registered_version(
            model_name, base_settings, version=version, alias=None if version is not None else alias,
            download_dir=download_dir or Path(scratch), compute_dtype=compute_dtype,
        )
    retriever = version_retriever(loaded.adapter.tags, retrieval or RetrievalSettings())
    return ServedModel(model_name, loaded.adapter, loaded.model, loaded.tokenizer, data_settings or DataSettings(), retriever)
