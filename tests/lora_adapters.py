"""Real LoRA adapters and the sample eval split, for tests that need a model without training one."""

from __future__ import annotations

from pathlib import Path

from drugslm_core.config import DataSettings, SplitSettings
from drugslm_core.data.formatting import InstructionDataset, build_instruction_dataset
from drugslm_core.data.records import RecordBatch
from drugslm_core.data.sample_corpus import leaflet_records
from drugslm_core.data.splits import split_by_focus
from drugslm_core.modeling.base_model import BaseModelRef
from drugslm_core.modeling.loading import load_quantized_base, load_tokenizer


def save_lora_adapter(base: BaseModelRef, path: Path, *, random_init: bool = False, lora_alpha: int = 8) -> Path:
    """A rank-4 LoRA on every linear layer of the 4-bit base, saved to ``path``.

    ``random_init=False`` is peft's default (B = 0: the model answers exactly like the
    base); ``True`` randomises both matrices, a reliably worse model. Seed torch first
    where the weights must be reproducible.
    """
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=4, lora_alpha=lora_alpha, target_modules="all-linear", task_type="CAUSAL_LM",
        init_lora_weights=not random_init,
    )
    get_peft_model(load_quantized_base(base), config).save_pretrained(path)
    return path


def sample_eval_split(base: BaseModelRef) -> InstructionDataset:
    """The bundled corpus rendered and split exactly as the pipeline does with default settings."""
    data, split = DataSettings(), SplitSettings()
    dataset = build_instruction_dataset(
        RecordBatch(records=leaflet_records()), load_tokenizer(base), data.system_prompt, data.domain_tag, base.sha256
    )
    return split_by_focus(dataset, split.eval_fraction, split.seed)[1]
