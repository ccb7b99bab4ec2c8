"""HTML previews of record batches, quarantines and datasets for the dashboard."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

STYLE = (
    "<style>body{font-family:system-ui,sans-serif;margin:1rem;color:#1d2433}"
    "table{border-collapse:collapse}td,th{border:1px solid #d0d5dd;padding:.25rem .5rem;"
    "text-align:left;vertical-align:top;max-width:40rem}th{background:#f2f4f7}</style>"
)


def html_table(title: str, summary: str, columns: Sequence[str], rows: Iterable[Sequence[object]], total: int, limit: int) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(str(cell) if cell is not None else '∅')}</td>" for cell in row) + "</tr>"
        for row in rows
    )
    more = f"<p>Showing {limit} of {total}.</p>" if total > limit else ""
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>{escape(title)}</title>{STYLE}</head>"
        f"<body><h2>{escape(title)}</h2><p>{escape(summary)}</p><table><tr>{head}</tr>{body}</table>{more}</body></html>"
    )
