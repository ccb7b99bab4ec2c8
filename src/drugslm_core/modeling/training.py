"""Fine-tuning with TRL's SFTTrainer: QLoRA, LoRA or full, packed, resumable.

- Examples are tokenized once (``encode_example``: prompt labels masked, so the
  loss is on answer tokens only) and packed best-fit into rows of
  ``max_seq_length`` tokens, padding-free: no compute goes to padding and
  attention stays inside each example (position ids restart at every example).
- Cosine schedule with warmup, gradient clipping, gradient accumulation.
- With a validation split: eval loss every ``eval_steps``, early stopping, and the
  best checkpoint (lowest eval loss) is the one kept.
- Checkpoints are mirrored to a :class:`CheckpointStore`; a run started again with
  the same settings resumes from the latest complete one.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from drugslm_core.config import TrainingSettings
from drugslm_core.data.formatting import InstructionDataset
from drugslm_core.modeling.base_model import BaseModelRef
from drugslm_core.modeling.checkpoints import CheckpointStore, mirror_callback
from drugslm_core.modeling.loading import TRAINED_MANIFEST, load_base_for_training, load_tokenizer
from drugslm_core.modeling.tokenization import IGNORE_INDEX, encode_example

logger = logging.getLogger(__name__)


class TrainingOutcome(BaseModel):
    adapter_dir: str
    """The trained weights: a LoRA adapter (modes ``qlora``/``lora``) or a whole model (``full``)."""
    base_model: BaseModelRef
    steps: int
    train_loss: float
    loss_history: list[tuple[int, float]]
    runtime_s: float
    answer_tokens: int
    """Answer (loss-bearing) tokens the optimizer saw (estimated from their share of the packed rows)."""
    trainable_parameters: int
    total_parameters: int
    train_examples: int
    settings: TrainingSettings
    mode: Literal["qlora", "lora", "full"] = "qlora"
    tokens_seen: int = 0
    """Real (non-padding) tokens that went through the model in training."""
    validation_examples: int = 0
    eval_history: list[tuple[int, float]] = []
    best_step: int | None = None
    """The step whose weights were kept (lowest eval loss); ``None`` without a validation split."""
    best_eval_loss: float | None = None
    stopped_early: bool = False
    resumed_from_step: int = 0
    """0 for a fresh run; else the step of the checkpoint this run resumed from."""
    checkpoint_uri: str | None = None
    merged_dir: str | None = None
    """The adapter merged into the base weights, when ``export_merged`` is set."""
    preference: dict[str, Any] | None = None
    """Set when the preference stage (``modeling/preference.py``) tuned this adapter on top of the SFT one:
    method, examples, steps, loss, how far the adapter moved; ``None`` for a plain SFT adapter."""

    @property
    def is_adapter(self) -> bool:
        return self.mode != "full"


def encode_dataset(dataset: InstructionDataset, tokenizer: Any, max_length: int) -> list[dict[str, list[int]]]:
    return [encode_example(tokenizer, e.prompt, e.completion, max_length) for e in dataset.examples]


def _as_hf_dataset(encoded: list[dict[str, list[int]]]) -> Any:
    from datasets import Dataset

    return Dataset.from_list([{"input_ids": e["input_ids"], "labels": e["labels"]} for e in encoded])


def sft_config(
    settings: TrainingSettings, output_dir: Path, has_validation: bool, report_to: str | list[str] = "none"
) -> Any:
    """The SFTConfig for these settings: evaluation, best-checkpoint selection and early
    stopping only with a validation split; a checkpoint every ``eval_steps`` either way."""
    import torch
    from trl import SFTConfig

    return SFTConfig(
        output_dir=str(output_dir),
        max_steps=settings.max_steps,
        per_device_train_batch_size=settings.per_device_batch_size,
        per_device_eval_batch_size=settings.per_device_batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        learning_rate=settings.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=settings.warmup_steps,
        max_grad_norm=settings.max_grad_norm,
        weight_decay=settings.weight_decay,
        logging_steps=settings.logging_steps,
        eval_strategy="steps" if has_validation else "no",
        eval_steps=settings.eval_steps if has_validation else None,
        save_strategy="steps",
        save_steps=settings.eval_steps,
        save_total_limit=settings.save_total_limit,
        load_best_model_at_end=has_validation,
        metric_for_best_model="eval_loss" if has_validation else None,
        greater_is_better=False if has_validation else None,
        report_to=report_to,
        bf16=settings.compute_dtype == "bfloat16",
        use_cpu=not torch.cuda.is_available(),
        gradient_checkpointing=settings.gradient_checkpointing,
        seed=settings.seed,
        data_seed=settings.seed,
        dataloader_num_workers=0,
        max_length=settings.max_seq_length,
        packing=settings.packing,
        packing_strategy="bfd",
        train_sampling_strategy="random" if settings.packing else "group_by_length",
        include_num_input_tokens_seen="non_padding",
        disable_tqdm=False,
    )


def lora_config(settings: TrainingSettings) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=settings.target_modules,
        task_type="CAUSAL_LM",
    )


def build_trainer(
    train: InstructionDataset,
    base: BaseModelRef,
    settings: TrainingSettings,
    output_dir: Path,
    validation: InstructionDataset | None = None,
    report_to: str | list[str] = "none",
    callbacks: list[Any] | None = None,
) -> Any:
    """An SFTTrainer for ``settings.mode`` on pre-tokenized, answer-masked examples."""
    from transformers import EarlyStoppingCallback, set_seed
    from trl import SFTTrainer

    if len(train) == 0:
        raise ValueError("the training split is empty")
    set_seed(settings.seed)
    tokenizer = load_tokenizer(base)
    has_validation = validation is not None and len(validation) > 0
    model = load_base_for_training(base, settings.mode, settings.compute_dtype)
    callbacks = list(callbacks or [])
    if has_validation and settings.early_stopping_patience is not None:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=settings.early_stopping_patience))
    return SFTTrainer(
        model=model,
        args=sft_config(settings, output_dir, has_validation, report_to),
        train_dataset=_as_hf_dataset(encode_dataset(train, tokenizer, settings.max_seq_length)),
        eval_dataset=(
            _as_hf_dataset(encode_dataset(validation, tokenizer, settings.max_seq_length))
            if has_validation and validation is not None
            else None
        ),
        processing_class=tokenizer,
        peft_config=None if settings.mode == "full" else lora_config(settings),
        callbacks=callbacks,
    )


def _answer_share(dataset: Any) -> float:
    labels = dataset["labels"]
    total = sum(len(row) for row in labels)
    return sum(sum(1 for t in row if t != IGNORE_INDEX) for row in labels) / max(total, 1)


def finetune(
    train: InstructionDataset,
    base: BaseModelRef,
    settings: TrainingSettings,
    output_dir: Path,
    validation: InstructionDataset | None = None,
    checkpoints: CheckpointStore | None = None,
    report_to: str | list[str] = "none",
) -> TrainingOutcome:
    """Train per ``settings.mode``; save the weights to ``output_dir/adapter`` (and the merged
    model to ``output_dir/merged`` with ``export_merged``)."""
    trainer_dir = output_dir / "trainer"
    callbacks = [mirror_callback(checkpoints)] if checkpoints is not None else []
    trainer = build_trainer(train, base, settings, trainer_dir, validation, report_to, callbacks)
    resume = checkpoints.restore(trainer_dir) if checkpoints is not None else None
    resumed_from = int(resume.name.split("-")[1]) if resume is not None else 0

    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=str(resume) if resume is not None else None)
    runtime = time.perf_counter() - started

    model_dir = output_dir / "adapter"
    trainer.save_model(str(model_dir))
    trainer.processing_class.save_pretrained(model_dir)
    (model_dir / TRAINED_MANIFEST).write_text(
        json.dumps({"base_model": base.model_dump(), "training": settings.model_dump(mode="json")}, indent=2)
    )
    state = trainer.state
    history = [(int(h["step"]), float(h["loss"])) for h in state.log_history if "loss" in h]
    eval_history = [(int(h["step"]), float(h["eval_loss"])) for h in state.log_history if "eval_loss" in h]
    trainable, total = _parameter_counts(trainer.model)
    outcome = TrainingOutcome(
        adapter_dir=str(model_dir),
        base_model=base,
        mode=settings.mode,
        steps=result.global_step,
        train_loss=float(result.training_loss),
        loss_history=history,
        eval_history=eval_history,
        best_step=state.best_global_step if eval_history else None,
        best_eval_loss=float(state.best_metric) if eval_history and state.best_metric is not None else None,
        stopped_early=result.global_step < settings.max_steps,
        resumed_from_step=resumed_from,
        runtime_s=runtime,
        tokens_seen=int(state.num_input_tokens_seen),
        answer_tokens=int(state.num_input_tokens_seen * _answer_share(trainer.train_dataset)),
        trainable_parameters=trainable,
        total_parameters=total,
        train_examples=len(train),
        validation_examples=len(validation) if validation is not None else 0,
        settings=settings,
        checkpoint_uri=checkpoints.uri if checkpoints is not None else None,
    )
    main_process = trainer.is_world_process_zero()
    if checkpoints is not None and not settings.keep_checkpoints and main_process:
        checkpoints.clear()
    del trainer
    if settings.export_merged and main_process:
        outcome.merged_dir = str(export_merged(outcome, output_dir / "merged"))
    logger.info(
        "Trained %s for %d steps (from step %d) in %.0f s: train loss %.4f%s",
        settings.mode, outcome.steps, resumed_from, runtime, outcome.train_loss,
        f", best eval loss {outcome.best_eval_loss:.4f} at step {outcome.best_step}" if outcome.best_step else "",
    )
    return outcome


def _parameter_counts(model: Any) -> tuple[int, int]:
    if hasattr(model, "get_nb_trainable_parameters"):
        trainable, total = model.get_nb_trainable_parameters()
        return int(trainable), int(total)
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def export_merged(outcome: TrainingOutcome, target: Path) -> Path:
    """The adapter folded into the base weights (``compute_dtype``): a plain model folder any
    server can load (vLLM, TGI, llama.cpp conversion). A full fine-tune is already one."""
    from peft import PeftModel

    from drugslm_core.modeling.loading import load_plain_base

    if not outcome.is_adapter:
        return Path(outcome.adapter_dir)
    base_model = load_plain_base(outcome.base_model, outcome.settings.compute_dtype)
    merged = PeftModel.from_pretrained(base_model, outcome.adapter_dir).merge_and_unload()
    merged.save_pretrained(target)
    load_tokenizer(outcome.base_model).save_pretrained(target)
    manifest = json.loads((Path(outcome.adapter_dir) / TRAINED_MANIFEST).read_text())
    manifest["training"]["mode"] = "full"  # loadable like a full fine-tune
    manifest["merged_from"] = outcome.mode
    (target / TRAINED_MANIFEST).write_text(json.dumps(manifest, indent=2))
    return target

