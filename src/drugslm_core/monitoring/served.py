"""Served questions from a ``drugslm feedback export`` file (FeedbackRecord JSON lines)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from pydantic import ValidationError

from drugslm_core.data.feedback_records import FeedbackRecord


def read_feedback_export(path: Path, since: datetime | None = None, until: datetime | None = None) -> list[FeedbackRecord]:
    """Every line of the export (in the ``[since, until)`` window when given); a bad line is an
    error naming the file, the line and the field, never skipped."""
    if not path.is_file():
        raise FileNotFoundError(f"feedback export {path} not found")
    records = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = FeedbackRecord.model_validate_json(line)
            except ValidationError as error:
                first = error.errors()[0]
                field = ".".join(str(part) for part in first["loc"]) or "(line)"
                raise ValueError(f"{path}:{number}: field {field!r}: {first['msg']}") from error
            if (since is None or record.created_at >= since) and (until is None or record.created_at < until):
                records.append(record)
    return records


def rated(records: list[FeedbackRecord]) -> int:
    """Rows a reviewer acted on (a thumb or a correction): the feedback that counts toward retraining."""
    return sum(1 for r in records if r.rating is not None or r.correction)
