"""DPO and KTO on the real tiny model, one step each, from a feedback export through the gate:
the SFT adapter is the reference (not the bare base), the tuned adapter moved and is saved
alone in the SFT layout, loadable by the evaluation/serving loader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from drugslm_core.config import (
    BaseModelSettings,
    CleaningSettings,
    DataSettings,
    FeedbackSourceSettings,
    PreferenceSettings,
    TrainingSettings,
    ValidationSettings,
)
from drugslm_core.modeling.base_model import BaseModelRef, provision_base_model
from drugslm_core.modeling.loading import TRAINED_MANIFEST, load_tokenizer, load_with_adapter
from drugslm_core.modeling.preference import build_preference_data, preference_tune
from drugslm_core.modeling.training import TrainingOutcome
from tests.lora_adapters import save_lora_adapter
from tests.unit.test_feedback_candidates import EXPORT


@pytest.fixture(scope="module")
def base() -> BaseModelRef:
    return provision_base_model(BaseModelSettings())


@pytest.fixture(scope="module")
def sft(base: BaseModelRef, tmp_path_factory: pytest.TempPathFactory) -> TrainingOutcome:
    """A LoRA adapter that is NOT the identity (random A and B): base and SFT answer differently,
    so a reference taken from the bare base would show in the first step's rewards."""
    torch.manual_seed(0)
    path = save_lora_adapter(base, tmp_path_factory.mktemp("sft") / "adapter", random_init=True, lora_alpha=4)
    settings = TrainingSettings(lora_r=4, lora_alpha=4)
    (path / TRAINED_MANIFEST).write_text(json.dumps(
        {"base_model": base.model_dump(), "training": settings.model_dump(mode="json")}))
    return TrainingOutcome(adapter_dir=str(path), base_model=base, steps=0, train_loss=0.0, loss_history=[],
                           runtime_s=0.0, answer_tokens=0, trainable_parameters=0, total_parameters=0,
                           train_examples=0, settings=settings)


@pytest.fixture(scope="module")
def data(base: BaseModelRef, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    export = tmp_path_factory.mktemp("feedback") / "export.jsonl"
    export.write_text("\n".join(EXPORT) + "\n", encoding="utf-8")
    settings = DataSettings()
    return build_preference_data(FeedbackSourceSettings(files=[export]), CleaningSettings(), ValidationSettings(),
                                 load_tokenizer(base), settings.system_prompt, settings.domain_tag)


@pytest.mark.parametrize("method", ["dpo", "kto"])
def test_one_step_on_top_of_the_sft_adapter(method: str, sft: TrainingOutcome, data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings = PreferenceSettings(enabled=True, method=method, max_steps=1, learning_rate=1e-3, max_length=160)
    tuned = preference_tune(sft, data, settings, tmp_path)
    summary = tuned.preference
    assert summary is not None and summary["method"] == method and summary["steps"] == 1
    assert summary["examples"] == (len(data.pairs) if method == "dpo" else len(data.unpaired))
    # policy == reference at the first step: the reference is the SFT adapter
    assert summary["initial_rewards"] and all(abs(v) < 1e-6 for v in summary["initial_rewards"].values())
    assert summary["adapter_change_l2"] > 0
    before = load_file(Path(sft.adapter_dir) / "adapter_model.safetensors")
    after = load_file(Path(tuned.adapter_dir) / "adapter_model.safetensors")
    assert before.keys() == after.keys()  # the tuned adapter alone, no "ref" copy, same layout
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert not (Path(tuned.adapter_dir) / "ref").exists()
    manifest = json.loads((Path(tuned.adapter_dir) / TRAINED_MANIFEST).read_text())
    assert manifest["preference"]["method"] == method and manifest["training"]["mode"] == "qlora"
    assert load_with_adapter(tuned.base_model, tuned.adapter_dir) is not None
