"""Load base models for training (4-bit, bf16 or fp32) and trained models for inference."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from drugslm_core.modeling.base_model import BaseModelRef

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


def torch_dtype(name: str) -> Any:
    import torch

    return {"bfloat16": torch.bfloat16, "float32": torch.float32}[name]


def load_tokenizer(base: BaseModelRef) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base.path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_quantized_base(base: BaseModelRef, compute_dtype: str = "bfloat16") -> PreTrainedModel:
    """The base model with nf4 weights and double quantization (bitsandbytes).

    On a CUDA machine it goes to GPU 0, otherwise it stays on the CPU, where
    bitsandbytes' CPU backend runs the 4-bit matmuls.
    """
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    dtype = torch_dtype(compute_dtype)
    quantization = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=dtype,
    )
    device_map: Any = {"": 0} if torch.cuda.is_available() else "cpu"
    model = AutoModelForCausalLM.from_pretrained(
        base.path, quantization_config=quantization, device_map=device_map, dtype=dtype
    )
    model.config.use_cache = False
    return model


def load_plain_base(base: BaseModelRef, dtype: str) -> PreTrainedModel:
    """The base model unquantized, in ``dtype``, on GPU 0 where there is one."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base.path, dtype=torch_dtype(dtype))
    if torch.cuda.is_available():
        # PreTrainedModel.to is ``@wraps(torch.nn.Module.to)``: mypy reads the unbound signature
        # (self first) and takes "cuda:0" for the module; the call is the ordinary bound one.
        model = model.to("cuda:0")  # type: ignore[arg-type]
    model.config.use_cache = False
    return model


def load_base_for_training(base: BaseModelRef, mode: Literal["qlora", "lora", "full"], compute_dtype: str) -> PreTrainedModel:
    """QLoRA: nf4 weights; LoRA: frozen weights in ``compute_dtype``; full: fp32 master weights
    (the Trainer's bf16 autocast does the compute in ``compute_dtype``)."""
    if mode == "qlora":
        return load_quantized_base(base, compute_dtype)
    return load_plain_base(base, compute_dtype if mode == "lora" else "float32")


TRAINED_MANIFEST = "drugslm_adapter.json"
"""Written beside every trained model: its base model and the training settings (``mode`` included)."""


def trained_mode(model_dir: Path | str) -> str:
    """``qlora``, ``lora`` (a LoRA adapter) or ``full`` (a whole model), from the manifest."""
    manifest = Path(model_dir) / TRAINED_MANIFEST
    if not manifest.is_file():
        return "qlora"  # adapters saved before the manifest recorded a mode, and test adapters
    return str(json.loads(manifest.read_text())["training"].get("mode", "qlora"))


def load_base_for_adapter(base: BaseModelRef, mode: str, compute_dtype: str) -> Any:
    """The base an adapter of ``mode`` runs on: 4-bit for QLoRA, ``compute_dtype`` for LoRA."""
    return load_plain_base(base, compute_dtype) if mode == "lora" else load_quantized_base(base, compute_dtype)


def load_with_adapter(base: BaseModelRef, adapter_dir: Path | str, compute_dtype: str = "bfloat16") -> Any:
    """Base plus a trained LoRA adapter, ready for inference: the base in 4-bit for a QLoRA
    adapter, in ``compute_dtype`` for a LoRA one."""
    from peft import PeftModel

    mode = trained_mode(adapter_dir)
    if mode == "full":
        raise ValueError(f"{adapter_dir} holds a fully fine-tuned model, not an adapter: use load_trained")
    model = PeftModel.from_pretrained(load_base_for_adapter(base, mode, compute_dtype), str(adapter_dir))
    model.eval()
    return model


def load_trained(base: BaseModelRef, model_dir: Path | str, compute_dtype: str = "bfloat16") -> Any:
    """Any trained model of ours, ready for inference: an adapter on its base, or a full model."""
    if trained_mode(model_dir) != "full":
        return load_with_adapter(base, model_dir, compute_dtype)
    model = load_plain_base(base.model_copy(update={"path": str(model_dir)}), compute_dtype)
    model.eval()
    return model


class ModelSet:
    """The base and several trained models (``{"tuned": dir, "champion": dir}``) loaded once, for
    side-by-side evaluation: every adapter is attached, under its label, to one shared base
    (4-bit, or ``compute_dtype`` when the first model is a bf16 LoRA); a full fine-tune is a
    model of its own. ``active(label)`` gives the model that answers as ``label`` (or ``base``).
    """

    def __init__(self, base: BaseModelRef, trained: dict[str, Path | str], compute_dtype: str = "bfloat16") -> None:
        from peft import PeftModel

        modes = {label: trained_mode(path) for label, path in trained.items()}
        self.full = {label: load_trained(base, path, compute_dtype) for label, path in trained.items() if modes[label] == "full"}
        adapters = [label for label in trained if modes[label] != "full"]
        shared = load_base_for_adapter(base, modes[adapters[0]] if adapters else "qlora", compute_dtype)
        if adapters:
            shared = PeftModel.from_pretrained(shared, str(trained[adapters[0]]), adapter_name=adapters[0])
            for label in adapters[1:]:
                shared.load_adapter(str(trained[label]), adapter_name=label)
        shared.eval()
        self.shared = shared
        self.adapters = adapters

    @contextlib.contextmanager
    def active(self, label: str) -> Iterator[Any]:
        if label in self.full:
            yield self.full[label]
        elif label == "base":
            with self.shared.disable_adapter() if self.adapters else contextlib.nullcontext():
                yield self.shared
        else:
            self.shared.set_adapter(label)
            yield self.shared
