"""Every HTML page comes from the shared templates: one stylesheet, inlined (the pages stay
self-contained), and every value from the data escaped."""

from __future__ import annotations

import re

from drugslm_core.config import ValidationSettings
from drugslm_core.data.preview import html_table
from drugslm_core.data.records import QARecord, RecordBatch
from drugslm_core.data.transform import CleaningStats
from drugslm_core.evaluation.promotion import decide_for_evaluation
from drugslm_core.evaluation.report import render_evaluation_report
from drugslm_core.pages import stylesheet
from drugslm_core.quality.gate import apply_quality_gate
from drugslm_core.quality.report import render_cleaning_report, render_gate_report

SCRIPT = "<script>alert('x')</script>"
ESCAPED = "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;"


def _pages(scored_evaluation, training_outcome) -> dict[str, str]:
    evaluation, _, _ = scored_evaluation
    evaluation = evaluation.model_copy(update={"benchmark": SCRIPT})
    gate = apply_quality_gate(RecordBatch(records=[QARecord(id=SCRIPT, question=SCRIPT, answer="Too short.", focus=SCRIPT, source=SCRIPT,
                                                            locator="record 0")]), ValidationSettings())
    return {
        "run report": render_evaluation_report(evaluation, training_outcome, decide_for_evaluation(evaluation)),
        "gate": render_gate_report(gate.summary()),
        "cleaning": render_cleaning_report(CleaningStats(records_in=1, records_out=1, pii={SCRIPT: 1})),
        "preview": html_table(SCRIPT, SCRIPT, ("id", SCRIPT), [("a", SCRIPT)], 1, 200, before=(SCRIPT, ("x",), [(SCRIPT,)])),
    }


def test_every_page_inlines_the_one_stylesheet_and_escapes_data(scored_evaluation, training_outcome):
    css = stylesheet()
    assert ".num{" in css and ".promote{" in css
    for name, page in _pages(scored_evaluation, training_outcome).items():
        assert page.startswith("<!doctype html>"), name
        assert page.count("<style>") == 1 and f"<style>\n{css}</style>" in page, name
        assert not re.search(r"<link|<script|src=['\"]?https?:", page), name  # self-contained
        assert ESCAPED in page, name
        assert "<script" not in page.lower(), name
