"""QLoRA fine-tuning with transformers' Trainer and peft.

Base weights in nf4 with double quantization, LoRA adapters on every linear
layer, loss on answer tokens only (prompt labels are masked), cosine schedule
with warmup, gradient clipping, length-grouped batches to cut padding.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from drugslm_core.config import TrainingSettings
from drugslm_core.data.formatting import InstructionDataset
from drugslm_core.modeling.base_model import BaseModelRef
from drugslm_core.modeling.loading import load_quantized_base, load_tokenizer
from drugslm_core.modeling.tokenization import IGNORE_INDEX, encode_example

logger = logging.getLogger(__name__)

ADAPTER_MANIFEST = "drugslm_adapter.json"


class TrainingOutcome(BaseModel):
    adapter_dir: str
    base_model: BaseModelRef
    steps: int
    train_loss: float
    loss_history: list[tuple[int, float]]
    runtime_s: float
    answer_tokens: int
    """Answer (loss-bearing) tokens the optimizer saw: mean per example x examples seen."""
    trainable_parameters: int
    total_parameters: int
    train_examples: int
    settings: TrainingSettings


def encode_dataset(dataset: InstructionDataset, tokenizer: Any, max_length: int) -> list[dict[str, list[int]]]:
    return [encode_example(tokenizer, e.prompt, e.completion, max_length) for e in dataset.examples]


def finetune_qlora(
    train: InstructionDataset,
    base: BaseModelRef,
    settings: TrainingSettings,
    output_dir: Path,
) -> TrainingOutcome:
    """Train a LoRA adapter on the 4-bit base model; save it to ``output_dir/adapter``."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments, set_seed

    if len(train) == 0:
        raise ValueError("the training split is empty")
    set_seed(settings.seed)
    tokenizer = load_tokenizer(base)
    encoded = encode_dataset(train, tokenizer, settings.max_seq_length)
    model = load_quantized_base(base, settings.compute_dtype)
    lora = LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=settings.target_modules,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora)
    trainable, total = model.get_nb_trainable_parameters()
    logger.info("LoRA: %d trainable of %d parameters", trainable, total)

    on_cuda = torch.cuda.is_available()
    args = TrainingArguments(
        output_dir=str(output_dir / "trainer"),
        max_steps=settings.max_steps,
        per_device_train_batch_size=settings.per_device_batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        learning_rate=settings.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=settings.warmup_steps,
        max_grad_norm=1.0,
        weight_decay=0.0,
        logging_steps=settings.logging_steps,
        save_strategy="no",
        report_to="none",
        bf16=settings.compute_dtype == "bfloat16",
        use_cpu=not on_cuda,
        seed=settings.seed,
        data_seed=settings.seed,
        train_sampling_strategy="group_by_length",
        dataloader_num_workers=0,
        remove_unused_columns=False,
    )
    collator = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE_INDEX)
    trainer = Trainer(model=model, args=args, train_dataset=encoded, data_collator=collator)
    started = time.perf_counter()
    result = trainer.train()
    runtime = time.perf_counter() - started

    adapter_dir = output_dir / "adapter"
    model.save_pretrained(adapter_dir)
    tokenizer.save_pretrained(adapter_dir)
    (adapter_dir / ADAPTER_MANIFEST).write_text(
        json.dumps({"base_model": base.model_dump(), "training": settings.model_dump(mode="json")}, indent=2)
    )
    history = [(int(h["step"]), float(h["loss"])) for h in trainer.state.log_history if "loss" in h]
    per_step = settings.per_device_batch_size * settings.gradient_accumulation_steps
    mean_answer_tokens = sum(sum(1 for t in e["labels"] if t != IGNORE_INDEX) for e in encoded) / len(encoded)
    answer_tokens = int(mean_answer_tokens * result.global_step * per_step)
    return TrainingOutcome(
        adapter_dir=str(adapter_dir),
        base_model=base,
        steps=result.global_step,
        train_loss=float(result.training_loss),
        loss_history=history,
        runtime_s=runtime,
        answer_tokens=answer_tokens,
        trainable_parameters=int(trainable),
        total_parameters=int(total),
        train_examples=len(encoded),
        settings=settings,
    )
