"""Monitoring core: knowledge-base drift, drift decisions and the retraining trigger (real MiniLM)."""

from __future__ import annotations

import json
import random
from importlib.resources import files

import pytest

from drugslm_core.config import MonitoringSettings
from drugslm_core.data.records import RecordBatch
from drugslm_core.data.sample_corpus import leaflet_records
from drugslm_core.monitoring.descriptors import describe
from drugslm_core.monitoring.knowledge_base import compare
from drugslm_core.monitoring.reference import from_records
from drugslm_core.monitoring.runner import monitor_batches
from drugslm_core.monitoring.served import read_feedback_export

BENCHMARK = json.loads(files("drugslm_core.data.benchmark").joinpath("drug_benchmark_v1.json").read_text())["questions"]
SETTINGS = MonitoringSettings(launch="none", min_new_records=10_000, min_feedback_rows=10_000)


def corpus(change=None):
    records = leaflet_records()
    if change:
        records = [change(r) for r in records]
    return RecordBatch(records=records)


def with_dose(drug: str, old: str, new: str):
    def change(record):
        if record.focus == drug and record.section == "dosage":
            assert old in (record.answer or ""), f"{old!r} not in {drug}'s dosage"
            return record.model_copy(update={"answer": record.answer.replace(old, new)})
        return record
    return change


@pytest.fixture(scope="module")
def embed():
    from drugslm_core.monitoring.drift import minilm_embedder

    return minilm_embedder()


def test_changed_leaflet_is_reported_with_its_benchmark_questions():
    reference = from_records(corpus(), "champion")
    current = from_records(corpus(with_dose("Ciprofloxacin", "250", "350")), "current")
    drift = compare(reference.leaflets, current.leaflets, BENCHMARK)
    assert [c.drug for c in drift.changed] == ["Ciprofloxacin"]
    assert drift.changed[0].sections == ["dosage"]
    assert not drift.new and not drift.removed
    assert "DOS001" in {q.id for q in drift.affected_questions}
    assert all(q.drug == "Ciprofloxacin" and q.section == "dosage" for q in drift.affected_questions)
    assert "Ciprofloxacin: dosage" in drift.summary()


def test_new_and_removed_leaflets():
    full = corpus()
    reference = from_records(RecordBatch(records=[r for r in full.records if r.focus != "Amoxicillin"]), "champion")
    current = from_records(RecordBatch(records=[r for r in full.records if r.focus != "Azithromycin"]), "current")
    drift = compare(reference.leaflets, current.leaflets, BENCHMARK)
    assert drift.new == ["Amoxicillin"] and drift.removed == ["Azithromycin"] and not drift.changed
    assert "MOA001" in {q.id for q in drift.affected_questions}  # an Azithromycin question lost its source
    same = compare(reference.leaflets, reference.leaflets, BENCHMARK)
    assert same.changes == 0 and not same.affected_questions


def test_descriptors():
    frame = describe(["Take 500 mg of Amoxicillin twice daily.", "Où est la gare ?"], ["Amoxicillin"])
    assert frame["dose_mention"].tolist() == [1, 0]
    assert frame["known_drug"].tolist() == [1, 0]
    assert frame["words"].tolist() == [7, 4]
    assert 0 < frame["non_letter_share"][0] < 0.2


def test_no_shift_triggers_nothing(embed):
    records = corpus().records
    rng = random.Random(3)
    reference = from_records(RecordBatch(records=rng.sample(records, 200)), "champion")
    current = from_records(RecordBatch(records=rng.sample(records, 200)), "resample")
    current.leaflets = reference.leaflets  # same knowledge base: only the questions are compared here
    result = monitor_batches(reference, current, SETTINGS, BENCHMARK, embed=embed, with_html=False)
    assert result.drift is not None and result.drift.decided
    assert not result.drift.drifted, result.drift
    assert not result.decision.retrain
    assert result.decision.reason.startswith("no trigger: ")
    assert "knowledge base unchanged" in result.decision.reason


def test_off_domain_shift_triggers_with_its_reason(embed, tmp_path):
    reference = from_records(corpus(), "champion")
    current = from_records(RecordBatch(records=[]), "no batch")
    served = tmp_path / "served.jsonl"
    places = ["Paris", "Rome", "Lisbon", "Tokyo", "Cairo", "Lima", "Oslo", "Quito"]
    lines = []
    for i in range(60):
        question = f"What is the cheapest way to travel to {places[i % 8]} in week {i}?"
        lines.append(json.dumps({"trace_id": f"t{i}", "request_id": f"r{i}", "created_at": "2026-11-20T10:00:00Z",
                                 "model_version": "drugslm-v3", "question": question, "answer": "...",
                                 "citations": [], "rating": None, "correction": None, "reason": None,
                                 "reviewer_role": None}))
    served.write_text("\n".join(lines) + "\n")
    settings = SETTINGS.model_copy(update={"served_questions": served})
    result = monitor_batches(reference, current, settings, BENCHMARK, embed=embed, with_html=True)
    assert result.decision.retrain
    assert "text drift" in result.decision.reason and "embedding drift" in result.decision.reason
    assert result.metrics()["text_drift_auc"] > 0.9
    assert "RETRAIN: text drift" in result.html and "<html" in result.html.lower()


PORTUGUESE = ["Para que serve o {d}?", "Qual é a dose habitual de {d} para adultos?",
              "Quais são os efeitos colaterais mais comuns do {d}?", "Posso tomar {d} durante a gravidez?",
              "Como devo guardar o {d}?", "O que fazer se eu esquecer uma dose de {d}?"]


def test_a_quarter_of_questions_in_another_language_is_novel(embed):
    """Drug questions in Portuguese, a quarter of the batch: each is unlike every reference
    question (novelty), which a batch-wide domain classifier may miss."""
    from drugslm_core.monitoring.drift import measure_drift

    records = corpus().records
    rng = random.Random(11)
    questions = [r.question for r in records if r.question]
    drugs = sorted({r.focus for r in records})
    reference = rng.sample(questions, 200)
    portuguese = [rng.choice(PORTUGUESE).format(d=rng.choice(drugs)) for _ in range(50)]
    current = rng.sample(questions, 150) + portuguese
    same = rng.sample(questions, 200)
    shifted = measure_drift(reference, current, drugs, SETTINGS, embed(reference), embed(current))
    assert shifted.novelty_drifted and shifted.novel_share >= 0.2, shifted
    assert any(r.startswith("novel questions") for r in shifted.reasons(SETTINGS.min_drifted_descriptors))
    resample = measure_drift(reference, same, drugs, SETTINGS, embed(reference), embed(same))
    assert not resample.novelty_drifted and resample.novelty_p_value > SETTINGS.novelty_p_value, resample


def test_knowledge_base_change_alone_triggers():
    reference = from_records(corpus(), "champion")
    current = from_records(corpus(with_dose("Ciprofloxacin", "250", "350")), "current")
    current.questions = []  # no questions to compare: the leaflet change alone decides
    result = monitor_batches(reference, current, SETTINGS, BENCHMARK, with_html=False)
    assert result.decision.retrain
    assert result.decision.reasons == [r for r in result.decision.reasons if r.startswith("knowledge-base change")]
    assert "Ciprofloxacin: dosage" in result.decision.reason


def test_bad_feedback_line_names_file_line_and_field(tmp_path):
    path = tmp_path / "export.jsonl"
    path.write_text('{"trace_id": "t", "request_id": "r", "created_at": "2026-11-20T10:00:00Z", '
                    '"model_version": "v", "question": "q", "answer": "a", "rating": "meh"}\n')
    with pytest.raises(ValueError, match=r"export.jsonl:1: field 'rating'"):
        read_feedback_export(path)
