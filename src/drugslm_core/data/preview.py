"""HTML previews of record batches, quarantines and datasets for the dashboard.

Every cell is scrubbed of personal data before it is written (the raw artifacts keep what the
sources held, for lineage; what the dashboard shows never does). The page is
``pages/templates/table.html.j2`` (escaped, with the shared stylesheet)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import NamedTuple

from drugslm_core.config import PIISettings
from drugslm_core.data.pii import ORDER, scrub_pii
from drugslm_core.pages import render_page


@lru_cache(maxsize=1)
def _allowed() -> tuple[str, ...]:
    return tuple(PIISettings().allow)


def scrubbed(value: object) -> str:
    """The text of a cell with e-mails, phone numbers and national ids replaced (every PII kind)."""
    return scrub_pii(str(value), ORDER, _allowed())[0]


class _Table(NamedTuple):
    heading: str
    columns: Sequence[str]
    rows: list[list[str | None]]


def _scrubbed_rows(rows: Iterable[Sequence[object]]) -> list[list[str | None]]:
    """Each cell scrubbed; ``None`` stays ``None`` (shown as ∅)."""
    return [[None if cell is None else scrubbed(cell) for cell in row] for row in rows]


def html_table(
    title: str, summary: str, columns: Sequence[str], rows: Iterable[Sequence[object]], total: int, limit: int,
    before: tuple[str, Sequence[str], Iterable[Sequence[object]]] | None = None,
) -> str:
    """A titled table of at most ``limit`` rows; ``before``: (heading, columns, rows) of a small table shown first."""
    first = None
    if before is not None:
        heading, first_columns, first_rows = before
        first = _Table(heading, first_columns, _scrubbed_rows(first_rows))
    return render_page(
        "table.html.j2", title=title, summary=scrubbed(summary), columns=columns, rows=_scrubbed_rows(rows),
        total=total, limit=limit, before=first,
    )
