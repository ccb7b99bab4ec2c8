"""A human-readable HTML page for a gate result (shown in the ZenML dashboard)."""

from __future__ import annotations

from html import escape

from drugslm_core.data.preview import STYLE
from drugslm_core.data.transform import CleaningStats
from drugslm_core.quality.gate import ValidationResult

_STYLE = """
<style>
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1d2433}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}td,th{border:1px solid #d0d5dd;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#f2f4f7}.ok{color:#067647}.bad{color:#b42318}.num{text-align:right}
</style>
"""


def render_gate_report(gate: ValidationResult, max_rows: int = 200) -> str:
    status = "passed" if gate.passed else "found problems"
    rows = "".join(
        f"<tr><td>{escape(o.expectation)}</td><td>{escape(o.column)}</td>"
        f"<td class={'ok' if o.success else 'bad'}>{'pass' if o.success else 'fail'}</td>"
        f"<td class=num>{o.unexpected_count}</td><td>{escape(o.description)}</td></tr>"
        for o in gate.outcomes
    )
    reasons = "".join(
        f"<tr><td>{escape(k)}</td><td class=num>{v}</td></tr>"
        for k, v in sorted(gate.quarantine.reason_counts().items())
    )
    quarantined = "".join(
        f"<tr><td>{escape(str(item.record.id))}</td><td>{escape(item.record.source)}</td>"
        f"<td>{escape(item.record.locator)}</td><td>{escape('; '.join(item.reasons))}</td>"
        f"<td>{escape((item.record.question or '')[:120])}</td></tr>"
        for item in gate.quarantine.items[:max_rows]
    )
    more = len(gate.quarantine) - max_rows
    return f"""<!doctype html><html><head><meta charset=utf-8><title>Data validation</title>{_STYLE}</head><body>
<h1>Data validation (Great Expectations) — {status}</h1>
<table><tr><th>records in</th><th>accepted</th><th>quarantined</th><th>accepted share</th></tr>
<tr><td class=num>{gate.records_in}</td><td class=num>{gate.accepted}</td>
<td class=num>{len(gate.quarantine)}</td><td class=num>{gate.accepted_share:.1%}</td></tr></table>
<h2>Expectations</h2><table><tr><th>expectation</th><th>column</th><th>result</th><th>failing rows</th><th>rule</th></tr>{rows}</table>
<h2>Quarantine reasons</h2><table><tr><th>reason</th><th>records</th></tr>{reasons or '<tr><td colspan=2>none</td></tr>'}</table>
<h2>Quarantined records</h2><table><tr><th>id</th><th>source</th><th>where</th><th>reasons</th><th>question</th></tr>{quarantined}</table>
{f'<p>… and {more} more in the quarantine artifact.</p>' if more > 0 else ''}
</body></html>"""


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
    body = "".join(f"<tr><td>{escape(k)}</td><td>{v}</td></tr>" for k, v in rows)
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>Cleaning</title>{STYLE}</head><body>"
        f"<h2>Cleaning</h2><p>records in = records out + duplicates: {stats.records_in} = "
        f"{stats.records_out} + {stats.duplicates}</p><table><tr><th>what</th><th>count</th></tr>{body}</table></body></html>"
    )
