"""Human-readable HTML pages of a gate result and of the cleaning counts (shown in the ZenML dashboard).

The markup is ``pages/templates/gate_report.html.j2`` and ``cleaning_report.html.j2`` (escaped,
with the shared stylesheet)."""

from __future__ import annotations

from drugslm_core.data.transform import CleaningStats
from drugslm_core.pages import render_page
from drugslm_core.quality.gate import ValidationResult


def render_gate_report(gate: ValidationResult, max_rows: int = 200) -> str:
    return render_page(
        "gate_report.html.j2", title="Data validation", gate=gate,
        reasons=sorted(gate.quarantine.reason_counts().items()),
        quarantined=gate.quarantine.items[:max_rows], more=len(gate.quarantine) - max_rows,
    )


def render_cleaning_report(stats: CleaningStats) -> str:
    conversion = stats.from_documents
    rows = [
        ("records in (ingested + from documents)", stats.records_in),
        ("… of which from documents", conversion.records),
        ("documents", conversion.documents),
        ("documents without extractable text", conversion.documents_without_text),
        ("sections split into chunks", conversion.chunked_sections),
        ("records added by chunking", conversion.chunks_added),
        ("records out", stats.records_out),
        ("exact duplicates (quarantined)", stats.duplicates_exact),
        ("near duplicates (quarantined)", stats.duplicates_near),
        ("records with HTML stripped", stats.html_stripped),
        ("records changed by normalisation", stats.normalized),
        ("boilerplate lines removed", stats.boilerplate_lines),
        ("answers emptied by cleaning (the gate quarantines them)", stats.emptied),
    ] + [(f"PII replaced: {kind}", count) for kind, count in stats.pii.items()]
    return render_page("cleaning_report.html.j2", title="Cleaning", stats=stats, rows=rows)
