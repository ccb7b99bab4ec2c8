"""Rebuild a registered model version offline: provisioned base model + its LoRA adapter.

A version holds only the adapter (a few MB) and names its base model by name and
hash (tags ``base_model_name``, ``base_model_sha256``). Loading downloads the
adapter from the MLflow artifact store, provisions the base model from the local
cache (``modeling.base_model``; nothing is downloaded from a hub) and refuses a
base whose hash differs from the one the adapter was trained on.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from drugslm_core.config import BaseModelSettings
from drugslm_core.modeling.base_model import BaseModelRef, provision_base_model
from drugslm_core.modeling.loading import load_tokenizer, load_trained


class RegisteredAdapter(BaseModel):
    """A registered model version (e.g. the one behind @champion) with its adapter on disk."""

    version: str
    run_id: str | None
    adapter_dir: str
    tags: dict[str, str] = {}


@dataclass
class LoadedVersion:
    adapter: RegisteredAdapter
    base: BaseModelRef
    model: Any
    """The 4-bit base with the version's adapter (a peft model in eval mode)."""
    tokenizer: Any


def download_version(
    model_name: str, version: str | None = None, alias: str | None = None, download_dir: Path | None = None
) -> RegisteredAdapter:
    """The adapter of ``model_name`` at ``version`` (or behind ``alias``), downloaded to disk.

    Raises ``LookupError`` when the model, version or alias does not exist."""
    import mlflow
    from mlflow.exceptions import MlflowException

    if (version is None) == (alias is None):
        raise ValueError("give exactly one of version and alias")
    client = mlflow.MlflowClient()
    try:
        found = (
            client.get_model_version(model_name, str(version))
            if version is not None
            else client.get_model_version_by_alias(model_name, str(alias))
        )
    except MlflowException as error:
        # No such model: RESOURCE_DOES_NOT_EXIST; no such alias/version: INVALID_PARAMETER_VALUE.
        if error.error_code in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"} and "not found" in str(error):
            wanted = f"@{alias}" if alias is not None else f" v{version}"
            raise LookupError(f"no model version {model_name}{wanted} in the MLflow registry") from error
        raise
    target = download_dir or Path(tempfile.mkdtemp(prefix="drugslm-version-"))
    local = mlflow.artifacts.download_artifacts(artifact_uri=found.source, dst_path=str(target))
    return RegisteredAdapter(version=str(found.version), run_id=found.run_id, adapter_dir=local, tags=dict(found.tags))


def find_registered_adapter(model_name: str, alias: str, download_dir: Path) -> RegisteredAdapter | None:
    """The version behind ``alias`` (e.g. ``champion``) with its adapter downloaded, or ``None``
    when the model or the alias does not exist yet."""
    try:
        return download_version(model_name, alias=alias, download_dir=download_dir)
    except LookupError:
        return None


def check_base_matches(adapter: RegisteredAdapter, base: BaseModelRef, model_name: str) -> None:
    expected = adapter.tags.get("base_model_sha256")
    if expected and expected != base.sha256:
        raise RuntimeError(
            f"{model_name} v{adapter.version} was trained on base model {expected[:12]}…, "
            f"but this machine's base model is {base.sha256[:12]}…"
        )


def load_registered_version(
    model_name: str,
    base_settings: BaseModelSettings,
    version: str | None = None,
    alias: str | None = None,
    download_dir: Path | None = None,
    compute_dtype: str = "bfloat16",
) -> LoadedVersion:
    """The version's model ready for inference: its adapter on the base model (offline, from the
    cache), or the full fine-tune it holds."""
    adapter = download_version(model_name, version, alias, download_dir)
    base = provision_base_model(base_settings)
    check_base_matches(adapter, base, model_name)
    return LoadedVersion(
        adapter=adapter, base=base, model=load_trained(base, adapter.adapter_dir, compute_dtype),
        tokenizer=load_tokenizer(base),
    )


def alias_version(model_name: str, alias: str) -> str | None:
    """The version number behind ``model_name@alias`` now, or ``None`` when there is none
    (the serving alias watcher polls this)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        return str(mlflow.MlflowClient().get_model_version_by_alias(model_name, alias).version)
    except MlflowException as error:
        if error.error_code in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"} and "not found" in str(error):
            return None
        raise
