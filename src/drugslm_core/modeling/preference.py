"""Optional preference tuning on top of the SFT adapter, from reviewed feedback (TRL DPO or KTO).

The data comes from the feedback exports (``data.feedback.files``) through the SAME clean
step and Great Expectations gate as any file (``data/feedback_candidates.py``):

- DPO pairs: each accepted correction (by an allowed reviewer role) is ``chosen``, the answer
  that was served for it ``rejected``;
- KTO examples (unpaired): accepted thumbs-up answers and corrections are desirable; answers
  quarantined as ``feedback_thumbs_down`` and the served answers that were corrected are
  undesirable. Unrated answers and disallowed roles are never used.

Questions about a drug of the run's held-out eval split are left out (and counted), so the
evaluation after this stage stays on unseen drugs.

The SFT adapter is loaded trainable and TRL copies it into a frozen ``ref`` adapter (the
reference policy, ``DPOTrainer``/``KTOTrainer`` with a ``PeftModel`` and no ``ref_model``);
only the tuned ``default`` adapter is saved, in the same layout as the SFT one, so the
evaluation, the gate and the registry take it unchanged.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from drugslm_core.config import CleaningSettings, FeedbackSourceSettings, PreferenceSettings, ValidationSettings
from drugslm_core.data.documents import DocumentBatch
from drugslm_core.data.feedback_candidates import feedback_candidates
from drugslm_core.data.formatting import build_instruction_dataset
from drugslm_core.data.records import QARecord, RecordBatch
from drugslm_core.data.transform import clean_records
from drugslm_core.modeling.loading import TRAINED_MANIFEST, load_base_for_training, load_tokenizer
from drugslm_core.modeling.training import TrainingOutcome
from drugslm_core.quality.gate import apply_quality_gate

logger = logging.getLogger(__name__)


class PreferenceExample(BaseModel):
    id: str
    focus: str
    prompt: str
    """The chat-template prompt, exactly as for SFT (system prompt, domain tag, assistant header)."""
    chosen: str | None = None
    rejected: str | None = None
    """DPO: both set. KTO: ``chosen`` for a desirable completion, ``rejected`` for an undesirable one."""


class PreferenceData(BaseModel):
    pairs: list[PreferenceExample] = Field(default_factory=list)
    """DPO pairs (correction chosen, served answer rejected)."""
    unpaired: list[PreferenceExample] = Field(default_factory=list)
    """KTO examples, one completion each."""
    records_in: int = 0
    accepted: int = 0
    quarantined: int = 0
    reasons: dict[str, int] = Field(default_factory=dict)
    held_out_skipped: int = 0
    """Feedback about a drug of the eval split: not used for tuning."""


def _served_answer_record(record: QARecord, suffix: str) -> QARecord:
    served = (record.provenance or {}).get("served_answer", "")
    return record.model_copy(update={"id": f"{record.id}:{suffix}", "answer": served, "provenance": None})


def build_preference_data(
    feedback: FeedbackSourceSettings,
    cleaning: CleaningSettings,
    validation: ValidationSettings,
    tokenizer: Any,
    system_prompt: str,
    domain_tag: str,
    held_out_focus: set[str] | None = None,
) -> PreferenceData:
    """Feedback exports → DPO pairs and KTO examples, through the clean step and the GX gate."""
    records, counts = feedback_candidates(feedback)
    cleaned = clean_records(RecordBatch(records=records, files=counts), DocumentBatch(), cleaning)
    gate = apply_quality_gate(cleaned.records, validation, upstream=cleaned.duplicates)
    held_out = held_out_focus or set()
    skipped = 0

    def usable(record: QARecord) -> bool:
        nonlocal skipped
        if record.focus in held_out:
            skipped += 1
            return False
        return True

    corrections = [r for r in gate.accepted.records
                   if r.provenance and r.provenance["kind"] == "correction" and usable(r)]
    thumbs_up = [r for r in gate.accepted.records
                 if r.provenance and r.provenance["kind"] == "thumbs_up" and usable(r)]
    # Quarantined only for being thumbs-down: their answer went through the clean step like any other.
    thumbs_down = [item.record for item in gate.quarantine.items
                   if item.record.provenance and item.record.provenance["kind"] == "thumbs_down"
                   and all(reason.startswith("feedback_thumbs_down") for reason in item.reasons)
                   and usable(item.record)]
    served = clean_records(
        RecordBatch(records=[_served_answer_record(r, "served") for r in corrections]), DocumentBatch(),
        cleaning.model_copy(update={"dedup": cleaning.dedup.model_copy(update={"exact": False, "near": False})}),
    ).records.records

    def render(batch: list[QARecord]) -> list[Any]:
        return build_instruction_dataset(RecordBatch(records=batch), tokenizer, system_prompt, domain_tag).examples

    chosen, rejected = render(corrections), render(served)
    pairs = [PreferenceExample(id=c.id, focus=c.focus, prompt=c.prompt, chosen=c.completion, rejected=r.completion)
             for c, r in zip(chosen, rejected, strict=True) if c.completion != r.completion]
    unpaired = [PreferenceExample(id=e.id, focus=e.focus, prompt=e.prompt, chosen=e.completion)
                for e in chosen + render(thumbs_up)]
    unpaired += [PreferenceExample(id=e.id, focus=e.focus, prompt=e.prompt, rejected=e.completion)
                 for e in rejected + render(thumbs_down)]
    data = PreferenceData(
        pairs=pairs, unpaired=unpaired, records_in=gate.records_in, accepted=len(gate.accepted),
        quarantined=len(gate.quarantine), reasons=gate.quarantine.reason_counts(), held_out_skipped=skipped,
    )
    logger.info(
        "Preference data from feedback: %d in, %d accepted, %d quarantined %s; %d DPO pair(s), %d KTO example(s); "
        "%d left out (held-out drugs)", data.records_in, data.accepted, data.quarantined, data.reasons,
        len(pairs), len(unpaired), skipped,
    )
    return data


def _train_rows(data: PreferenceData, method: str) -> list[dict[str, Any]]:
    if method == "dpo":
        return [{"prompt": e.prompt, "chosen": e.chosen, "rejected": e.rejected} for e in data.pairs]
    return [{"prompt": e.prompt, "completion": e.chosen if e.chosen is not None else e.rejected,
             "label": e.chosen is not None} for e in data.unpaired]


def _adapter_weights(model: Any, adapter: str) -> dict[str, Any]:
    return {name: param.detach().float().clone() for name, param in model.named_parameters()
            if f".{adapter}." in name and "lora_" in name}


def trainer_config(settings: PreferenceSettings, compute_dtype: str, output_dir: Path, report_to: str | list[str]) -> Any:
    import torch
    from trl import DPOConfig, KTOConfig

    common: dict[str, Any] = dict(
        output_dir=str(output_dir), max_steps=settings.max_steps, learning_rate=settings.learning_rate,
        per_device_train_batch_size=settings.per_device_batch_size, beta=settings.beta,
        max_length=settings.max_length, logging_steps=settings.logging_steps, save_strategy="no",
        report_to=report_to, bf16=compute_dtype == "bfloat16", use_cpu=not torch.cuda.is_available(),
        seed=settings.seed, data_seed=settings.seed, dataloader_num_workers=0, disable_tqdm=False,
    )
    return DPOConfig(**common) if settings.method == "dpo" else KTOConfig(**common)


def preference_tune(
    sft: TrainingOutcome,
    data: PreferenceData,
    settings: PreferenceSettings,
    output_dir: Path,
    report_to: str | list[str] = "none",
) -> TrainingOutcome:
    """DPO or KTO on top of the SFT adapter (the frozen reference); returns the tuned adapter's outcome,
    or ``sft`` itself (one log line) when the feedback holds fewer than ``min_examples`` usable examples."""
    from datasets import Dataset
    from peft import PeftModel
    from transformers import set_seed
    from trl import DPOTrainer, KTOTrainer

    rows = _train_rows(data, settings.method)
    if len(rows) < settings.min_examples:
        logger.warning(
            "Preference stage skipped: %d %s example(s) in the feedback, %d needed (preference.min_examples); "
            "the SFT adapter goes to evaluation unchanged", len(rows), settings.method.upper(), settings.min_examples,
        )
        return sft
    if not sft.is_adapter:
        raise ValueError("preference tuning needs a LoRA/QLoRA SFT adapter (training.mode qlora or lora), not 'full'")
    if settings.method == "kto" and settings.per_device_batch_size < 2:
        raise ValueError("preference.per_device_batch_size must be at least 2 for KTO (its KL term)")
    set_seed(settings.seed)
    compute_dtype = sft.settings.compute_dtype
    base = load_base_for_training(sft.base_model, sft.mode, compute_dtype)
    model = PeftModel.from_pretrained(base, sft.adapter_dir, is_trainable=True)
    before = _adapter_weights(model, "default")
    trainer_class = DPOTrainer if settings.method == "dpo" else KTOTrainer
    trainer = trainer_class(
        model=model, args=trainer_config(settings, compute_dtype, output_dir / "trainer", report_to),
        train_dataset=Dataset.from_list(rows), processing_class=load_tokenizer(sft.base_model),
    )
    tuned: Any = trainer.model  # the PeftModel TRL wraps (typed as a plain Module by TRL)
    if "ref" not in tuned.peft_config:  # TRL copies the SFT adapter into a frozen "ref" adapter
        raise RuntimeError("TRL did not create the frozen reference adapter; refusing to tune against the base")
    started = time.perf_counter()
    result = trainer.train()
    runtime = time.perf_counter() - started
    after = _adapter_weights(tuned, "default")
    change = sum(float((after[name] - before[name]).pow(2).sum()) for name in before) ** 0.5
    tuned.delete_adapter("ref")
    model_dir = output_dir / "adapter"
    tuned.save_pretrained(str(model_dir))
    processing: Any = trainer.processing_class  # the tokenizer given above (TRL types it as a union)
    processing.save_pretrained(model_dir)
    manifest = json.loads((Path(sft.adapter_dir) / TRAINED_MANIFEST).read_text())
    summary = {
        "method": settings.method, "examples": len(rows), "steps": int(result.global_step),
        "train_loss": float(result.training_loss), "beta": settings.beta, "runtime_s": runtime,
        "adapter_change_l2": change, "sft_adapter_dir": sft.adapter_dir,
        "feedback_records_in": data.records_in, "feedback_accepted": data.accepted,
        "feedback_quarantined": data.quarantined, "held_out_skipped": data.held_out_skipped,
    }
    manifest["preference"] = {**summary, "settings": settings.model_dump(mode="json")}
    (model_dir / TRAINED_MANIFEST).write_text(json.dumps(manifest, indent=2))
    history = [(int(h["step"]), float(h["loss"])) for h in trainer.state.log_history if "loss" in h]
    first = next((h for h in trainer.state.log_history if "loss" in h), {})
    # TRL's implicit rewards are beta * (log pi - log pi_ref): all 0 at the first step exactly when
    # the reference is the adapter the tuning started from (the SFT one), not the bare base.
    summary["initial_rewards"] = {k: float(v) for k, v in first.items() if k.startswith("rewards/") and "accuracies" not in k}
    del trainer
    logger.info("%s on the SFT adapter: %d step(s) on %d example(s), loss %.4f, adapter moved by %.3g (L2)",
                settings.method.upper(), summary["steps"], len(rows), summary["train_loss"], change)
    return sft.model_copy(update={
        "adapter_dir": str(model_dir), "preference": summary, "loss_history": sft.loss_history + history,
        "runtime_s": sft.runtime_s + runtime, "merged_dir": None,
    })
