"""Traces back out as ``FeedbackRecord`` s: the served requests of a time window with their feedback
(``drugslm feedback export``; the schema is the data layer's, data/feedback_records.py)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from drugslm_core.data.feedback_records import FeedbackRecord
from drugslm_core.feedback.store import CORRECTION, RATING
from drugslm_core.feedback.traces import ATTR_CITATIONS, TAG_MODEL_VERSION, TAG_REQUEST_ID, TRACE_NAME


def _ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


def _latest(assessments: list[Any], name: str) -> Any | None:
    live = [a for a in assessments if a.name == name and a.valid is not False]
    return max(live, key=lambda a: a.create_time_ms or 0) if live else None


def _json_value(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def trace_record(trace: Any) -> FeedbackRecord:
    """One stored trace (with its assessments) as a ``FeedbackRecord``; ``ValueError`` naming the trace
    and field when it does not fit."""
    info = trace.info
    spans = trace.data.spans
    root = next((span for span in spans if span.parent_id is None), spans[0] if spans else None)
    if root is None:
        raise ValueError(f"trace {info.trace_id}: it has no spans (was it written by drugslm serve?)")
    inputs, outputs = root.inputs or {}, root.outputs or {}
    rating = _latest(info.assessments or [], RATING)
    correction = _latest(info.assessments or [], CORRECTION)
    meta = (rating.metadata if rating is not None else None) or {}
    values = {
        "trace_id": info.trace_id,
        "request_id": info.tags.get(TAG_REQUEST_ID, ""),
        "created_at": datetime.fromtimestamp(info.request_time / 1000, tz=timezone.utc),
        "model_version": info.tags.get(TAG_MODEL_VERSION, ""),
        "question": inputs.get("question") if isinstance(inputs, dict) else None,
        "answer": outputs.get("answer", "") if isinstance(outputs, dict) else None,
        "citations": _json_value(root.attributes.get(ATTR_CITATIONS)) or [],
        "rating": rating.feedback.value if rating is not None and rating.feedback is not None else None,
        "correction": correction.expectation.value if correction is not None and correction.expectation else None,
        "reason": meta.get("reason"),
        "reviewer_role": meta.get("reviewer_role"),
    }
    try:
        return FeedbackRecord.model_validate(values)
    except ValidationError as error:
        first = error.errors()[0]
        raise ValueError(f"trace {info.trace_id}: field {'.'.join(map(str, first['loc']))}: {first['msg']}") from error


def export_feedback(since: datetime, until: datetime, experiment: str = "drugslm-traces",
                    tracking_uri: str | None = None) -> list[FeedbackRecord]:
    """Every served request of ``[since, until)`` in the trace experiment, oldest first, with its
    latest rating and correction (``rating`` None: served, nobody rated it)."""
    import mlflow

    if until <= since:
        raise ValueError(f"the window is empty: until ({until.isoformat()}) is not after since ({since.isoformat()})")
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    window = (f"trace.timestamp_ms >= {_ms(since)} AND trace.timestamp_ms < {_ms(until)} "
              f"AND trace.name = '{TRACE_NAME}'")
    records: list[FeedbackRecord] = []
    token: str | None = None
    while True:
        page = client.search_traces(locations=[found.experiment_id], filter_string=window, max_results=500,
                                    page_token=token)
        records.extend(trace_record(trace) for trace in page)
        token = page.token
        if not token:
            break
    return sorted(records, key=lambda record: (record.created_at, record.trace_id))


def served_questions(since: datetime, until: datetime, experiment: str = "drugslm-traces",
                     tracking_uri: str | None = None) -> list[str]:
    """The (PII-scrubbed) questions served in ``[since, until)``, oldest first (monitoring reads these)."""
    return [record.question for record in export_feedback(since, until, experiment, tracking_uri)]


def write_jsonl(records: list[FeedbackRecord], path: Path) -> int:
    """One JSON object a line; the number of records written."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(record.model_dump_json() + "\n")
    return len(records)
