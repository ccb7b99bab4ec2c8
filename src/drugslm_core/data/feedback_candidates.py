"""Served feedback (``drugslm feedback export`` JSONL) → candidate question/answer records.

Every non-blank line of an export becomes exactly one :class:`QARecord`, so the normal
clean step and Great Expectations gate handle feedback like any file, and
``records in = accepted + quarantined`` holds per export file:

- a correction by a reviewer whose role is in ``correction_roles`` → candidate
  (question, corrected answer), whatever the rating;
- a thumbs-up without a correction → candidate (question, the answer as served), when the
  rater's role is allowed by ``thumbs_up_roles`` (``None``: any rater);
- everything else is marked ``rejected`` with its reason, and the gate quarantines it:
  a correction by another role, a thumbs-down without a correction, an unrated answer,
  a thumbs-up by a role not allowed, a line that is not a valid ``FeedbackRecord``.

Each record carries its provenance (trace id, request id, reviewer role, model version,
rating, served answer): the preference stage builds its pairs from it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from pydantic import ValidationError

from drugslm_core.config import FeedbackSourceSettings
from drugslm_core.data.feedback_records import FeedbackRecord
from drugslm_core.data.records import QARecord, SourceCount

FEEDBACK_FOCUS = "feedback"
"""Focus of a feedback record without citations (the split keeps a focus on one side)."""


def feedback_export_files(paths: list[Path]) -> list[Path]:
    """The export files: each path itself, or the ``*.jsonl`` files of a folder (sorted)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.glob("*.jsonl") if p.is_file())
            if not found:
                raise FileNotFoundError(f"data.feedback.files: folder {path} holds no *.jsonl export")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"data.feedback.files: {path} not found")
    return files


def read_feedback_lines(path: Path) -> Iterator[tuple[int, str, FeedbackRecord | None, str | None]]:
    """(line number, raw line, parsed record or ``None``, error or ``None``) per non-blank line."""
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield number, line.rstrip("\n"), FeedbackRecord.model_validate(json.loads(line)), None
            except json.JSONDecodeError as error:
                yield number, line.rstrip("\n"), None, f"not JSON ({error.msg} at column {error.colno})"
            except ValidationError as error:
                fields = "; ".join(f"field '{'.'.join(map(str, e['loc']))}': {e['msg']}" for e in error.errors())
                yield number, line.rstrip("\n"), None, f"not a FeedbackRecord ({fields})"


def decide(feedback: FeedbackRecord, settings: FeedbackSourceSettings) -> tuple[str, str | None, str | None]:
    """(kind, answer to learn from or ``None``, rejection reason or ``None``) for one feedback record."""
    role = feedback.reviewer_role
    if feedback.correction is not None:
        if role in settings.correction_roles:
            return "correction", feedback.correction, None
        allowed = ", ".join(settings.correction_roles) or "none"
        return "correction", None, (
            f"feedback_role_not_allowed: correction by reviewer_role {role!r} (allowed: {allowed})"
        )
    if feedback.rating == "up":
        if settings.thumbs_up_roles is not None and role not in settings.thumbs_up_roles:
            allowed = ", ".join(settings.thumbs_up_roles) or "none"
            return "thumbs_up", None, f"feedback_role_not_allowed: thumbs-up by reviewer_role {role!r} (allowed: {allowed})"
        return "thumbs_up", feedback.answer, None
    if feedback.rating == "down":
        why = f" (reason: {feedback.reason})" if feedback.reason else ""
        return "thumbs_down", None, f"feedback_thumbs_down: thumbs-down{why} without a correction"
    return "unrated", None, "feedback_unrated: served answer nobody rated"


def provenance(feedback: FeedbackRecord, kind: str) -> dict[str, str]:
    values = {
        "kind": kind,
        "trace_id": feedback.trace_id,
        "request_id": feedback.request_id,
        "created_at": feedback.created_at.isoformat(),
        "model_version": feedback.model_version,
        "reviewer_role": feedback.reviewer_role or "",
        "rating": feedback.rating or "",
        "reason": feedback.reason or "",
        "served_answer": feedback.answer,
    }
    return values


def feedback_record(path: Path, number: int, feedback: FeedbackRecord, settings: FeedbackSourceSettings) -> QARecord:
    kind, answer, rejected = decide(feedback, settings)
    cited = feedback.citations[0] if feedback.citations else None
    return QARecord(
        id=f"feedback:{feedback.trace_id}",
        question=feedback.question,
        # A rejected record keeps what was served, for the quarantine view (the gate never accepts it).
        answer=answer if answer is not None else feedback.answer,
        focus=cited.drug if cited is not None else FEEDBACK_FOCUS,
        section=cited.section if cited is not None else None,
        source=str(path),
        locator=f"line {number} (trace {feedback.trace_id}, {kind})",
        rejected=rejected,
        provenance=provenance(feedback, kind),
    )


def read_feedback_export(path: Path, settings: FeedbackSourceSettings) -> tuple[list[QARecord], SourceCount]:
    """One record per non-blank line of the export (candidate or rejected with its reason), and the file's count."""
    records: list[QARecord] = []
    for number, raw, feedback, error in read_feedback_lines(path):
        if feedback is None:
            records.append(QARecord(
                id=None, question=None, answer=None, focus=FEEDBACK_FOCUS, source=str(path),
                locator=f"line {number}", rejected=f"unparsable_row: line {number}: {error}", raw=raw,
            ))
        else:
            records.append(feedback_record(path, number, feedback, settings))
    candidates = sum(r.rejected is None for r in records)
    count = SourceCount(
        source=str(path), format="feedback-jsonl", held=len(records), unit="feedback records",
        note=f"{candidates} candidate(s) before the gate",
    )
    return records, count


def feedback_candidates(settings: FeedbackSourceSettings) -> tuple[list[QARecord], list[SourceCount]]:
    """Every configured export, read in order."""
    records: list[QARecord] = []
    counts: list[SourceCount] = []
    for path in feedback_export_files(settings.files):
        read, count = read_feedback_export(path, settings)
        records.extend(read)
        counts.append(count)
    return records, counts
