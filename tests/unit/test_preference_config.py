"""The preference stage's settings and data: off by default, on in configs/preference.yaml, built from
feedback through the same clean + GX gate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from drugslm_core.config import (
    CleaningSettings,
    DataSettings,
    FeedbackSourceSettings,
    PreferenceSettings,
    Settings,
    ValidationSettings,
    load_settings_file,
)
from drugslm_core.modeling.base_model import BaseModelRef
from drugslm_core.modeling.preference import build_preference_data, preference_tune
from drugslm_core.modeling.training import TrainingOutcome
from tests.unit.test_feedback_candidates import ANSWER, CORRECTION, EXPORT

ROOT = Path(__file__).resolve().parents[2]


def test_off_by_default_and_on_in_preference_yaml() -> None:
    assert Settings().preference.enabled is False
    local = load_settings_file(ROOT / "configs" / "local.yaml")
    preference = load_settings_file(ROOT / "configs" / "preference.yaml")
    assert local.preference.enabled is False and preference.preference.enabled is True
    assert preference.data.feedback.files == [Path("feedback")]
    # Everything but the preference stage and its feedback source is local.yaml's.
    strip = {"preference": True, "data": {"feedback"}}
    assert preference.model_dump(exclude=strip) == local.model_dump(exclude=strip)


def test_env_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRUGSLM_PREFERENCE__METHOD", "kto")
    assert Settings().preference.method == "kto"


@pytest.fixture()
def export(tmp_path: Path) -> Path:
    path = tmp_path / "feedback.jsonl"
    path.write_text("\n".join(EXPORT) + "\n", encoding="utf-8")
    return path


def build(export: Path, tokenizer: Any, held_out: set[str] | None = None):  # type: ignore[no-untyped-def]
    data = DataSettings()
    return build_preference_data(FeedbackSourceSettings(files=[export]), CleaningSettings(), ValidationSettings(),
                                 tokenizer, data.system_prompt, data.domain_tag, held_out)


def test_pairs_and_thumbs_from_gated_feedback(export: Path, tokenizer: Any) -> None:
    data = build(export, tokenizer)
    assert data.records_in == data.accepted + data.quarantined == 10
    # DPO: the two allowed corrections (pharmacist, physician) against the served answer
    assert len(data.pairs) == 2
    for pair in data.pairs:
        assert CORRECTION in (pair.chosen or "") and ANSWER in (pair.rejected or "")
        assert pair.prompt.endswith("assistant\n") and "amoxicillin" in pair.prompt
    # KTO: 2 corrections + 2 thumbs-up desirable; 2 corrected served answers + 1 thumbs-down undesirable.
    # Never the unrated answer, the patient's correction or the too-short correction.
    desirable = [e for e in data.unpaired if e.chosen is not None]
    undesirable = [e for e in data.unpaired if e.rejected is not None]
    assert (len(desirable), len(undesirable)) == (4, 3)
    used = {e.id.removesuffix(":served") for e in data.unpaired}
    assert used == {"feedback:fix-pharmacist", "feedback:fix-physician", "feedback:up-patient",
                    "feedback:up-anonymous", "feedback:down"}


def test_held_out_drugs_are_left_out(export: Path, tokenizer: Any) -> None:
    data = build(export, tokenizer, held_out={"Amoxicillin"})
    assert data.pairs == []
    assert [e.id for e in data.unpaired] == ["feedback:up-anonymous"]  # no citation: focus "feedback"
    assert data.held_out_skipped == 4


def test_too_little_feedback_keeps_the_sft_adapter(export: Path, tokenizer: Any, caplog: pytest.LogCaptureFixture) -> None:
    data = build(export, tokenizer)
    sft = TrainingOutcome(
        adapter_dir="unused", base_model=BaseModelRef(name="b", path="p", sha256="s", source="s"), steps=1,
        train_loss=1.0, loss_history=[], runtime_s=0.0, answer_tokens=0, trainable_parameters=0,
        total_parameters=0, train_examples=0, settings=Settings().training,
    )
    with caplog.at_level("WARNING"):
        assert preference_tune(sft, data, PreferenceSettings(enabled=True, min_examples=3), Path("unused")) is sft
    assert "Preference stage skipped: 2 DPO example(s) in the feedback, 3 needed" in caplog.text
