"""Every training mode trains the real base model on a tiny budget; the merged export and the
accelerate launch path work for real (one CPU process)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from drugslm_core.config import AccelerateSettings, BaseModelSettings, TrainingSettings
from drugslm_core.data.formatting import InstructionDataset
from drugslm_core.modeling.base_model import BaseModelRef, provision_base_model
from drugslm_core.modeling.checkpoints import CheckpointStore
from drugslm_core.modeling.launch import TrainingJob, run_training
from drugslm_core.modeling.loading import load_tokenizer, load_trained, trained_mode
from drugslm_core.modeling.training import TrainingOutcome, finetune
from tests.lora_adapters import sample_eval_split

TINY = {"max_steps": 4, "eval_steps": 2, "logging_steps": 1, "max_seq_length": 128, "per_device_batch_size": 2,
        "warmup_steps": 1}


@pytest.fixture(scope="module")
def base() -> BaseModelRef:
    return provision_base_model(BaseModelSettings())


@pytest.fixture(scope="module")
def splits(base: BaseModelRef) -> tuple[InstructionDataset, InstructionDataset]:
    data = sample_eval_split(base)  # 48 examples of 6 drugs: plenty for 4 steps
    return (data.model_copy(update={"examples": data.examples[:32]}),
            data.model_copy(update={"examples": data.examples[32:40]}))


def _train(mode: str, base: BaseModelRef, splits, tmp: Path, **extra) -> TrainingOutcome:
    settings = TrainingSettings(mode=mode, **{**TINY, **extra})
    return finetune(splits[0], base, settings, tmp / "out", splits[1], CheckpointStore(str(tmp / "ckpt")))


def _answer_logits(model, base: BaseModelRef):
    import torch

    tokenizer = load_tokenizer(base)
    ids = tokenizer("Ibuprofen is used to treat", return_tensors="pt")
    with torch.no_grad():
        return model(**ids).logits.float()


@pytest.mark.parametrize("mode", ["qlora", "lora"])
def test_adapter_modes_train_and_keep_the_best_checkpoint(mode: str, base, splits, tmp_path: Path) -> None:
    outcome = _train(mode, base, splits, tmp_path)
    files = {p.name for p in Path(outcome.adapter_dir).iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "drugslm_adapter.json"} <= files
    assert not any(name.startswith("model") for name in files)  # adapter only
    assert outcome.mode == mode == trained_mode(outcome.adapter_dir)
    assert outcome.steps == 4 and math.isfinite(outcome.train_loss)
    assert [step for step, _ in outcome.eval_history] == [2, 4]
    assert outcome.best_eval_loss == min(loss for _, loss in outcome.eval_history)
    assert outcome.best_step in (2, 4)
    assert 0 < outcome.answer_tokens < outcome.tokens_seen <= 4 * 2 * 128  # packed rows, no padding counted
    assert outcome.trainable_parameters < outcome.total_parameters / 10
    assert not (tmp_path / "ckpt").exists()  # checkpoints are dropped once the run finished


def test_full_fine_tune_and_merged_export(base, splits, tmp_path: Path) -> None:
    import torch

    full = _train("full", base, splits, tmp_path / "full", learning_rate=5e-5)
    assert full.mode == "full" and trained_mode(full.adapter_dir) == "full"
    assert (Path(full.adapter_dir) / "model.safetensors").is_file()
    assert full.trainable_parameters == full.total_parameters
    assert len(full.eval_history) == 2 and math.isfinite(full.train_loss)

    lora = _train("lora", base, splits, tmp_path / "lora", export_merged=True, compute_dtype="float32")
    merged = Path(lora.merged_dir or "")
    assert (merged / "model.safetensors").is_file() and trained_mode(merged) == "full"
    # The merged weights answer like base + adapter.
    adapter_logits = _answer_logits(load_trained(base, lora.adapter_dir, "float32"), base)
    merged_logits = _answer_logits(load_trained(base, merged, "float32"), base)
    assert torch.allclose(adapter_logits, merged_logits, atol=1e-3)


def test_training_under_accelerate_launch(base, splits, tmp_path: Path) -> None:
    settings = TrainingSettings(**{**TINY, "max_steps": 2}, accelerate=AccelerateSettings(enabled=True, num_processes=1))
    job = TrainingJob(train=splits[0], validation=splits[1], base=base, settings=settings,
                      output_dir=tmp_path / "out", checkpoints=CheckpointStore(str(tmp_path / "ckpt")))
    outcome = run_training(job, tmp_path / "job")
    assert outcome.steps == 2 and (Path(outcome.adapter_dir) / "adapter_model.safetensors").is_file()
    assert (tmp_path / "job" / "outcome.json").is_file()  # written by the launched worker, not this process
