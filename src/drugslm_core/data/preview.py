"""HTML previews of record batches, quarantines and datasets for the dashboard.

Every cell is scrubbed of personal data before it is written (the raw artifacts keep what the
sources held, for lineage; what the dashboard shows never does)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache
from html import escape

from drugslm_core.config import PIISettings
from drugslm_core.data.pii import ORDER, scrub_pii

STYLE = (
    "<style>body{font-family:system-ui,sans-serif;margin:1rem;color:#1d2433}"
    "table{border-collapse:collapse}td,th{border:1px solid #d0d5dd;padding:.25rem .5rem;"
    "text-align:left;vertical-align:top;max-width:40rem}th{background:#f2f4f7}</style>"
)


@lru_cache(maxsize=1)
def _allowed() -> tuple[str, ...]:
    return tuple(PIISettings().allow)


def scrubbed(value: object) -> str:
    """The text of a cell with e-mails, phone numbers and national ids replaced (every PII kind)."""
    return scrub_pii(str(value), ORDER, _allowed())[0]


def _rows_html(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(scrubbed(cell)) if cell is not None else '∅'}</td>" for cell in row) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def html_table(
    title: str, summary: str, columns: Sequence[str], rows: Iterable[Sequence[object]], total: int, limit: int,
    before: tuple[str, Sequence[str], Iterable[Sequence[object]]] | None = None,
) -> str:
    """A titled table of at most ``limit`` rows; ``before``: (heading, columns, rows) of a small table shown first."""
    more = f"<p>Showing {limit} of {total}.</p>" if total > limit else ""
    first = ""
    if before is not None:
        heading, first_columns, first_rows = before
        first = f"<h3>{escape(heading)}</h3>{_rows_html(first_columns, first_rows)}<h3>Records</h3>"
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>{escape(title)}</title>{STYLE}</head>"
        f"<body><h2>{escape(title)}</h2><p>{escape(scrubbed(summary))}</p>{first}{_rows_html(columns, rows)}{more}</body></html>"
    )
