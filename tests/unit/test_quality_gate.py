"""The Great Expectations quality gate (drugslm_core.quality.gate / report)."""

from __future__ import annotations

import re

import pytest

from drugslm_core.config import ValidationSettings
from drugslm_core.data.records import QARecord, Quarantine, QuarantinedRecord, RecordBatch
from drugslm_core.quality.gate import QualityGateError, apply_quality_gate, enforce_accepted_share
from drugslm_core.quality.report import render_gate_report

SETTINGS = ValidationSettings(
    min_question_chars=8, max_question_chars=120, min_answer_chars=12, max_answer_chars=300
)
GOOD_QUESTION = "What is aspirin used for?"
GOOD_ANSWER = "Aspirin relieves mild pain, fever and inflammation."

MISSING_ANSWER = "missing: field 'answer' is absent"
MISSING_ID = "missing: field 'id' is absent"
EMPTY_ANSWER = "empty: field 'answer' is blank"
DUPLICATE = "duplicate_id: field 'id' is not unique"
ANSWER_LENGTH = "length: field 'answer' length outside [12, 300] characters"
QUESTION_LENGTH = "length: field 'question' length outside [8, 120] characters"


def record(id: str | None, question: str | None = GOOD_QUESTION, answer: str | None = GOOD_ANSWER) -> QARecord:
    return QARecord(id=id, question=question, answer=answer, focus="Aspirin", source="unit", locator=f"record {id}")


BATCH = RecordBatch(
    records=[
        record("good-1"),
        record("good-2", question="Who should not take aspirin?"),
        record("answer-none", answer=None),
        record("good-3", answer="Store below 25 °C, away from moisture."),
        record("answer-empty", answer=""),
        record("answer-blank", answer="    \n\t  "),
        record("answer-short", answer="Pain."),
        record("question-long", question="Why " + "really " * 30 + "?"),
        record("dup"),
        record("dup", question="What is the usual dose of aspirin?"),
        record(None),
        record("good-4", question="Exactly8", answer="x" * 300),  # both bounds are inclusive
    ]
)
EXPECTED_REASONS = {
    "answer-none": [MISSING_ANSWER],
    "answer-empty": [EMPTY_ANSWER, ANSWER_LENGTH],
    "answer-blank": [EMPTY_ANSWER, ANSWER_LENGTH],
    "answer-short": [ANSWER_LENGTH],
    "question-long": [QUESTION_LENGTH],
    "dup": [DUPLICATE],
    None: [MISSING_ID],
}


@pytest.fixture(scope="module")
def gate():
    return apply_quality_gate(BATCH, SETTINGS)


def test_counts(gate):
    assert gate.records_in == len(BATCH) == 12
    assert len(gate.accepted) == 4
    assert len(gate.quarantine) == 8
    assert len(gate.accepted) + len(gate.quarantine) == len(BATCH)
    assert gate.accepted_share == pytest.approx(4 / 12)


def test_accepted_records_keep_input_order(gate):
    assert [r.id for r in gate.accepted.records] == ["good-1", "good-2", "good-3", "good-4"]
    assert gate.accepted.records[0] == BATCH.records[0]


def test_each_quarantined_record_has_its_reasons(gate):
    quarantined = [(item.record.id, sorted(item.reasons)) for item in gate.quarantine.items]
    expected = [(r.id, sorted(EXPECTED_REASONS[r.id])) for r in BATCH.records if r.id in EXPECTED_REASONS]
    assert quarantined == expected  # in input order, both duplicates included


def test_quarantine_keeps_the_original_record(gate):
    by_locator = {item.record.locator: item.record for item in gate.quarantine.items}
    assert by_locator["record answer-none"].answer is None
    assert by_locator["record answer-blank"].answer == "    \n\t  "


def test_reason_counts(gate):
    assert gate.quarantine.reason_counts() == {"missing": 2, "empty": 2, "length": 4, "duplicate_id": 2}


def test_outcomes_report_failing_expectations(gate):
    outcomes = {(o.expectation, o.column): o for o in gate.outcomes}
    assert len(outcomes) == 9
    assert outcomes[("expect_column_values_to_not_be_null", "question")].success is True
    assert outcomes[("expect_column_values_to_not_be_null", "answer")].unexpected_count == 1
    assert outcomes[("expect_column_values_to_be_unique", "id")].unexpected_count == 2
    assert outcomes[("expect_column_value_lengths_to_be_between", "answer")].unexpected_count == 3
    assert outcomes[("expect_column_values_to_match_regex", "answer")].success is False
    assert all(o.success == (o.unexpected_count == 0) for o in gate.outcomes)


def test_all_good_batch_is_fully_accepted():
    batch = RecordBatch(records=[record("a"), record("b"), record("c")])
    result = apply_quality_gate(batch, SETTINGS)
    assert [r.id for r in result.accepted.records] == ["a", "b", "c"]
    assert len(result.quarantine) == 0
    assert result.accepted_share == 1.0
    assert all(o.success for o in result.outcomes)


# --- accepted share -----------------------------------------------------------------


def quarantine_of(n: int) -> Quarantine:
    return Quarantine(items=[QuarantinedRecord(record=record(f"q{i}"), reasons=[DUPLICATE]) for i in range(n)])


@pytest.mark.parametrize(("accepted", "quarantined", "min_share"), [(5, 5, 0.5), (6, 4, 0.5), (10, 0, 1.0), (0, 3, 0.0)])
def test_enforce_accepted_share_passes_at_or_above_threshold(accepted, quarantined, min_share):
    share = enforce_accepted_share(accepted, quarantine_of(quarantined), min_share)
    assert share == pytest.approx(accepted / (accepted + quarantined))


def test_enforce_accepted_share_raises_below_threshold():
    with pytest.raises(QualityGateError) as caught:
        enforce_accepted_share(4, quarantine_of(6), 0.5)
    message = str(caught.value)
    assert "4/10" in message
    assert "40.0%" in message
    assert "min_accepted_share=50%" in message
    assert "'duplicate_id': 6" in message


def test_enforce_accepted_share_on_gate_result(gate):
    assert enforce_accepted_share(len(gate.accepted), gate.quarantine, 0.3) == pytest.approx(1 / 3)
    with pytest.raises(QualityGateError, match=r"33\.3%"):
        enforce_accepted_share(len(gate.accepted), gate.quarantine, SETTINGS.min_accepted_share)


def test_enforce_accepted_share_with_no_records_fails():
    with pytest.raises(QualityGateError, match="0/0"):
        enforce_accepted_share(0, Quarantine(), 0.5)


# --- HTML report --------------------------------------------------------------------


def test_report_contains_counts_and_reasons(gate):
    html = render_gate_report(gate.summary())
    assert html.startswith("<!doctype html>")
    cells = re.findall(r"<td class=num>([^<]*)</td>", html)
    assert cells[:4] == ["12", "4", "8", "33.3%"]
    assert "found problems" in html
    assert "<td>duplicate_id</td><td class=num>2</td>" in html
    assert "<td>length</td><td class=num>4</td>" in html
    assert "field &#x27;answer&#x27; is absent" in html  # reasons are HTML-escaped
    assert html.count("<td>record dup</td>") == 2


def test_report_truncates_quarantine_rows(gate):
    html = render_gate_report(gate.summary(), max_rows=3)
    assert "and 5 more in the quarantine artifact" in html
    assert "record answer-short" not in html


# --- upstream quarantine, markup, per-expectation thresholds ---------------------------


def test_upstream_quarantine_is_merged_and_counted(gate):
    upstream = Quarantine(items=[QuarantinedRecord(record=record("copy"), reasons=["duplicate_of:good-1 (exact)"])])
    merged = apply_quality_gate(BATCH, SETTINGS, upstream=upstream)
    assert merged.records_in == len(BATCH) + 1
    assert len(merged.accepted) + len(merged.quarantine) == merged.records_in
    assert merged.quarantine.items[0] == upstream.items[0]
    assert merged.quarantine.reason_counts()["duplicate_of"] == 1
    summary = merged.summary()
    assert (summary.records_in, summary.accepted) == (13, 4)
    assert "duplicate_of:good-1" in render_gate_report(summary)


def test_answer_with_leftover_markup_is_quarantined():
    batch = RecordBatch(records=[record("ok"), record("html", answer="Take <b>one</b> tablet daily with food.")])
    result = apply_quality_gate(batch, SETTINGS)
    assert [r.id for r in result.accepted.records] == ["ok"]
    assert result.quarantine.items[0].reasons == ["markup: field 'answer' still contains HTML tags"]
    assert apply_quality_gate(RecordBatch(records=[record("lt", answer="Use when CrCl < 30 mL/min.")]), SETTINGS).quarantine.items == []


def test_mostly_threshold_decides_pass_but_rows_are_still_quarantined():
    key = "expect_column_value_lengths_to_be_between:answer"
    batch = RecordBatch(records=[record(str(i)) for i in range(9)] + [record("short", answer="Pain.")])
    strict = apply_quality_gate(batch, SETTINGS)
    lenient = apply_quality_gate(batch, SETTINGS.model_copy(update={"mostly": {key: 0.85}}))
    for result, success in ((strict, False), (lenient, True)):
        [outcome] = [o for o in result.outcomes if f"{o.expectation}:{o.column}" == key]
        assert (outcome.success, outcome.unexpected_count) == (success, 1)
        assert [i.record.id for i in result.quarantine.items] == ["short"]


def test_mostly_with_unknown_expectation_is_an_error():
    with pytest.raises(ValueError, match="unknown expectations"):
        apply_quality_gate(RecordBatch(records=[record("a")]), SETTINGS.model_copy(update={"mostly": {"typo:answer": 0.9}}))
