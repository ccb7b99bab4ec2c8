"""Feedback exports through ingest → clean → GX gate: records in = accepted + quarantined, with reasons."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drugslm_core.config import CleaningSettings, DataSettings, FeedbackSourceSettings, ValidationSettings
from drugslm_core.data.feedback_candidates import read_feedback_export
from drugslm_core.data.ingest import ingest_sources
from drugslm_core.data.transform import clean_records
from drugslm_core.quality.gate import apply_quality_gate

ANSWER = "Take amoxicillin every 8 hours with water; finish the whole course even if you feel better."
CORRECTION = "Adults usually take 500 mg every 8 hours; ask your pharmacist how long to continue the course."
CITATION = {"chunk_id": "c1", "drug": "Amoxicillin", "section": "dosage", "source": "sample-corpus"}


def line(trace: str, **fields: object) -> str:
    record = {
        "trace_id": trace, "request_id": f"req-{trace}", "created_at": "2026-11-20T10:00:00Z",
        "model_version": "drugslm-v3", "question": f"How should I take amoxicillin ({trace})?", "answer": ANSWER,
        "citations": [CITATION], "rating": None, "correction": None, "reason": None, "reviewer_role": None,
    }
    record.update(fields)
    return json.dumps(record)


EXPORT = [
    line("up-patient", rating="up", reviewer_role="patient"),                     # candidate: thumbs-up
    line("up-anonymous", rating="up", citations=[]),                              # candidate, focus "feedback"
    line("fix-pharmacist", rating="down", correction=CORRECTION, reason="wrong_dose", reviewer_role="pharmacist"),
    line("fix-physician", correction=CORRECTION + " (physician)", reviewer_role="physician"),
    line("fix-patient", rating="down", correction=CORRECTION, reviewer_role="patient"),   # role not allowed
    line("down", rating="down", reason="missing_warning", reviewer_role="pharmacist"),   # no correction
    line("unrated"),                                                                     # nobody rated it
    line("short-fix", correction="ok", reviewer_role="pharmacist"),                      # gate: answer too short
    "",                                                                                  # blank: not a record
    '{"trace_id": "broken", "rating": "sideways"}',                                      # not a FeedbackRecord
    "not json at all",
]


@pytest.fixture()
def export(tmp_path: Path) -> Path:
    path = tmp_path / "feedback-2026-11.jsonl"
    path.write_text("\n".join(EXPORT) + "\n", encoding="utf-8")
    return path


def gate_feedback(settings: FeedbackSourceSettings):  # type: ignore[no-untyped-def]
    ingested = ingest_sources(DataSettings(include_sample_corpus=False, feedback=settings))
    cleaned = clean_records(ingested.records, ingested.documents, CleaningSettings())
    return ingested, apply_quality_gate(cleaned.records, ValidationSettings(), upstream=cleaned.duplicates)


def test_records_in_equal_accepted_plus_quarantined_with_reasons(export: Path) -> None:
    ingested, gate = gate_feedback(FeedbackSourceSettings(files=[export]))
    assert len(ingested.records) == 10 == gate.records_in  # every non-blank line is one record
    assert len(gate.accepted) + len(gate.quarantine) == 10
    accepted = {r.provenance["trace_id"]: r for r in gate.accepted.records if r.provenance}
    assert set(accepted) == {"up-patient", "up-anonymous", "fix-pharmacist", "fix-physician"}
    assert accepted["fix-pharmacist"].answer == CORRECTION  # the correction, not the served answer
    assert accepted["fix-pharmacist"].provenance["served_answer"] == ANSWER
    assert accepted["fix-pharmacist"].provenance["reviewer_role"] == "pharmacist"
    assert accepted["fix-pharmacist"].provenance["model_version"] == "drugslm-v3"
    assert accepted["up-patient"].answer == ANSWER and accepted["up-patient"].focus == "Amoxicillin"
    assert accepted["up-anonymous"].focus == "feedback"

    reasons = {item.record.locator: item.reasons for item in gate.quarantine.items}
    by_trace = {loc.split("trace ")[1].split(",")[0]: r for loc, r in reasons.items() if "trace " in loc}
    assert by_trace["fix-patient"] == [
        "feedback_role_not_allowed: correction by reviewer_role 'patient' (allowed: pharmacist, physician)"
    ]
    assert by_trace["down"] == ["feedback_thumbs_down: thumbs-down (reason: missing_warning) without a correction"]
    assert by_trace["unrated"] == ["feedback_unrated: served answer nobody rated"]
    assert by_trace["short-fix"] == ["length: field 'answer' length outside [20, 4000] characters"]
    assert reasons["line 10"][0].startswith("unparsable_row: line 10: not a FeedbackRecord (field 'request_id'")
    assert reasons["line 11"][0].startswith("unparsable_row: line 11: not JSON")
    assert gate.quarantine.reason_counts() == {
        "feedback_role_not_allowed": 1, "feedback_thumbs_down": 1, "feedback_unrated": 1, "length": 1,
        "unparsable_row": 2,
    }
    (tally,) = gate.quarantine.per_file
    assert (tally.source, tally.held, tally.accepted, tally.quarantined) == (str(export), 10, 4, 6)


def test_roles_come_from_config(export: Path) -> None:
    settings = FeedbackSourceSettings(files=[export], correction_roles=["pharmacist"], thumbs_up_roles=["pharmacist"])
    _, gate = gate_feedback(settings)
    accepted = {r.provenance["trace_id"] for r in gate.accepted.records if r.provenance}
    assert accepted == {"fix-pharmacist"}
    reasons = [r for item in gate.quarantine.items for r in item.reasons]
    assert "feedback_role_not_allowed: correction by reviewer_role 'physician' (allowed: pharmacist)" in reasons
    assert "feedback_role_not_allowed: thumbs-up by reviewer_role 'patient' (allowed: pharmacist)" in reasons
    assert "feedback_role_not_allowed: thumbs-up by reviewer_role None (allowed: pharmacist)" in reasons
    assert len(gate.accepted) + len(gate.quarantine) == 10


def test_pii_in_feedback_is_scrubbed_by_the_clean_step(tmp_path: Path) -> None:
    path = tmp_path / "pii.jsonl"
    path.write_text(line("pii", rating="up", question="I am jane@example.com, how do I take amoxicillin?") + "\n")
    _, gate = gate_feedback(FeedbackSourceSettings(files=[path]))
    (record,) = gate.accepted.records
    assert "jane@example.com" not in (record.question or "")


def test_folder_of_exports_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text(line("a", rating="up") + "\n")
    (tmp_path / "b.jsonl").write_text(line("b", rating="down") + "\n")
    ingested = ingest_sources(DataSettings(include_sample_corpus=False, feedback=FeedbackSourceSettings(files=[tmp_path])))
    assert [c.held for c in ingested.files] == [1, 1]
    with pytest.raises(FileNotFoundError, match="missing.jsonl not found"):
        ingest_sources(DataSettings(include_sample_corpus=False,
                                    feedback=FeedbackSourceSettings(files=[tmp_path / "missing.jsonl"])))


def test_read_export_counts_every_line(export: Path) -> None:
    records, count = read_feedback_export(export, FeedbackSourceSettings())
    assert count.held == len(records) == 10 and count.unit == "feedback records"
    assert sum(r.rejected is None for r in records) == 5  # short-fix passes the reader; the gate catches it
