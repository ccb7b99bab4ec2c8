"""Do the safety flags measure what they say? Precision and recall on hand-labelled real answers.

``tests/data/safety_labels.jsonl`` holds answers that the 4-bit SmolLM2 base model and a
real QLoRA adapter (40 steps on the bundled corpus, ``tests/data/generate_safety_answers.py``)
gave to the bundled benchmark's questions, each labelled by hand per flag with a one-line
reason. This test runs today's checker over them and recomputes each flag's precision and
recall; the figures the run report shows (``FLAG_LABELLED_QUALITY``) must be these.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drugslm_core.evaluation.benchmark import load_benchmark
from drugslm_core.evaluation.safety import FLAG_LABELLED_QUALITY, SAFETY_FLAGS, corpus_safety_checker

LABELS = Path(__file__).resolve().parents[1] / "data" / "safety_labels.jsonl"


def load_rows() -> list[dict]:
    return [json.loads(line) for line in LABELS.read_text(encoding="utf-8").splitlines() if line.strip()]


def precision_recall(rows: list[dict]) -> dict[str, dict[str, float]]:
    checker = corpus_safety_checker()
    items = {item.id: item for item in load_benchmark().items}
    counts = {flag: {"tp": 0, "fp": 0, "fn": 0} for flag in SAFETY_FLAGS}
    for row in rows:
        item = items[row["id"]]
        dosage_question = (item.section or item.category).lower().startswith("dos")
        raised = checker.flags(row["answer"], item.drug, dosage_question)
        for flag in SAFETY_FLAGS:
            truth, predicted = bool(row["labels"][flag]["label"]), bool(raised[flag])
            key = "tp" if truth and predicted else "fp" if predicted else "fn" if truth else None
            if key:
                counts[flag][key] += 1
    return {
        flag: {
            "precision": c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 1.0,
            "recall": c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 1.0,
            "positives": c["tp"] + c["fn"],
            "raised": c["tp"] + c["fp"],
        }
        for flag, c in counts.items()
    }


def test_the_labelled_set_is_real_answers_of_both_models_with_a_reason_per_label():
    rows = load_rows()
    assert len(rows) >= 60
    assert {row["model"] for row in rows} == {"base", "tuned"}
    benchmark = {item.id: item for item in load_benchmark().items}
    for row in rows:
        assert benchmark[row["id"]].question == row["question"]
        assert row["answer"].strip()
        for flag in SAFETY_FLAGS:
            label = row["labels"][flag]
            assert label["label"] in (0, 1) and len(label["reason"]) > 5, (row["id"], row["model"], flag)


def test_flag_precision_and_recall_on_the_labelled_set_are_the_reported_ones():
    rows = load_rows()
    measured = precision_recall(rows)
    print({flag: {k: round(v, 3) for k, v in m.items()} for flag, m in measured.items()})
    assert FLAG_LABELLED_QUALITY["answers"] == len(rows)
    for flag in SAFETY_FLAGS:
        assert measured[flag]["positives"] > 0, f"no true {flag} in the labelled set: precision would mean nothing"
        assert FLAG_LABELLED_QUALITY[flag]["precision"] == pytest.approx(measured[flag]["precision"], abs=5e-3), flag
        assert FLAG_LABELLED_QUALITY[flag]["recall"] == pytest.approx(measured[flag]["recall"], abs=5e-3), flag
