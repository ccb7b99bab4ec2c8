"""A human-readable HTML page for a gate result (shown in the ZenML dashboard)."""

from __future__ import annotations

from html import escape

from drugslm_core.quality.gate import GateResult

_STYLE = """
<style>
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1d2433}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}td,th{border:1px solid #d0d5dd;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#f2f4f7}.ok{color:#067647}.bad{color:#b42318}.num{text-align:right}
</style>
"""


def render_gate_report(gate: GateResult, max_rows: int = 200) -> str:
    status = "passed" if all(o.success for o in gate.outcomes) else "found problems"
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
<tr><td class=num>{gate.records_in}</td><td class=num>{len(gate.accepted)}</td>
<td class=num>{len(gate.quarantine)}</td><td class=num>{gate.accepted_share:.1%}</td></tr></table>
<h2>Expectations</h2><table><tr><th>expectation</th><th>column</th><th>result</th><th>failing rows</th><th>rule</th></tr>{rows}</table>
<h2>Quarantine reasons</h2><table><tr><th>reason</th><th>records</th></tr>{reasons or '<tr><td colspan=2>none</td></tr>'}</table>
<h2>Quarantined records</h2><table><tr><th>id</th><th>source</th><th>where</th><th>reasons</th><th>question</th></tr>{quarantined}</table>
{f'<p>… and {more} more in the quarantine artifact.</p>' if more > 0 else ''}
</body></html>"""
