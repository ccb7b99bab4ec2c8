"""Load the base model in 4-bit (QLoRA) and attach adapters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drugslm_core.modeling.base_model import BaseModelRef


def torch_dtype(name: str) -> Any:
    import torch

    return {"bfloat16": torch.bfloat16, "float32": torch.float32}[name]


def load_tokenizer(base: BaseModelRef) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base.path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_quantized_base(base: BaseModelRef, compute_dtype: str = "bfloat16") -> Any:
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


def load_with_adapter(base: BaseModelRef, adapter_dir: Path | str, compute_dtype: str = "bfloat16") -> Any:
    """Base in 4-bit plus a trained LoRA adapter, ready for inference."""
    from peft import PeftModel

    model = PeftModel.from_pretrained(load_quantized_base(base, compute_dtype), str(adapter_dir))
    model.eval()
    return model
