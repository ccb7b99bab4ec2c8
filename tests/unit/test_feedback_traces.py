"""Traces of served requests and feedback on them, against a real (SQLite) MLflow tracking store."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import mlflow
import pytest
from pydantic import ValidationError

from drugslm_core.config import PIISettings
from drugslm_core.data.feedback_records import Citation, FeedbackRecord
from drugslm_core.feedback.export import export_feedback, served_questions, write_jsonl
from drugslm_core.feedback.store import FeedbackIn, TraceNotFound, attach_feedback, trace_experiment_id
from drugslm_core.feedback.traces import TraceRecorder

EXPERIMENT = "traces-unit"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[str]:
    previous = mlflow.get_tracking_uri()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    yield uri
    mlflow.set_tracking_uri(previous)
    mlflow.tracing.reset()


def _serve_one(recorder: TraceRecorder, question: str, answer: str, request_id: str = "chatcmpl-1",
               citations: list[Citation] | None = None) -> str:
    trace_id = recorder.begin(request_id, question, "drugslm-v3", time.time() - 0.25)
    assert trace_id is not None and trace_id.startswith("tr-")
    recorder.finish(trace_id, answer, prompt_tokens=12, completion_tokens=5, finish_reason="stop",
                    citations=citations or [], latency_s=0.25)
    assert recorder.written(trace_id, 30)
    return trace_id


def test_a_served_request_becomes_a_scrubbed_trace_and_exports_unrated(store: str, tmp_path: Path) -> None:
    recorder = TraceRecorder(EXPERIMENT, PIISettings())
    recorder.start()
    try:
        since = datetime.now(timezone.utc) - timedelta(minutes=1)
        citation = Citation(chunk_id="c1", drug="ibuprofen", section="dosage", source="sample")
        trace_id = _serve_one(recorder, "I am ana@example.com, call 415-555-2671: ibuprofen 400 mg?",
                              "Take 400 mg; write to doc@clinic.org", citations=[citation])
        until = datetime.now(timezone.utc) + timedelta(minutes=1)
    finally:
        recorder.stop()
    assert recorder.failures == 0
    trace = mlflow.get_trace(trace_id)
    assert trace.info.tags["drugslm.request_id"] == "chatcmpl-1"
    root = trace.data.spans[0]
    assert root.inputs == {"question": "I am [EMAIL], call [PHONE]: ibuprofen 400 mg?"}
    assert root.outputs == {"answer": "Take 400 mg; write to [EMAIL]"}
    assert root.attributes["prompt_tokens"] == 12 and root.attributes["completion_tokens"] == 5
    assert trace.info.execution_duration >= 200  # latency: from the request's arrival to its end

    records = export_feedback(since, until, EXPERIMENT)
    assert [record.trace_id for record in records] == [trace_id]
    record = records[0]
    assert record.rating is None and record.correction is None and record.reviewer_role is None
    assert record.model_version == "drugslm-v3" and record.citations == [citation]
    assert record.created_at.tzinfo is not None
    assert served_questions(since, until, EXPERIMENT) == ["I am [EMAIL], call [PHONE]: ibuprofen 400 mg?"]
    out = tmp_path / "export" / "feedback.jsonl"
    assert write_jsonl(records, out) == 1
    assert FeedbackRecord.model_validate_json(out.read_text().splitlines()[0]) == record
    # outside the window: nothing
    assert export_feedback(until, until + timedelta(hours=1), EXPERIMENT) == []
    with pytest.raises(ValueError, match="the window is empty"):
        export_feedback(until, since, EXPERIMENT)


def test_feedback_attaches_to_the_trace_and_the_latest_wins(store: str) -> None:
    recorder = TraceRecorder(EXPERIMENT, PIISettings())
    recorder.start()
    try:
        since = datetime.now(timezone.utc) - timedelta(minutes=1)
        rated = _serve_one(recorder, "Max dose of paracetamol?", "8 g a day", "chatcmpl-a")
        unrated = _serve_one(recorder, "What is ibuprofen?", "An NSAID.", "chatcmpl-b")
    finally:
        recorder.stop()
    assert trace_experiment_id(rated) == mlflow.get_experiment_by_name(EXPERIMENT).experiment_id
    attach_feedback(FeedbackIn(trace_id=rated, rating="up", reviewer_role="patient"))
    attach_feedback(FeedbackIn(trace_id=rated, rating="down", reviewer_role="pharmacist", reason="wrong_dose",
                               correction="At most 4 g a day for adults."))
    records = {record.request_id: record for record in
               export_feedback(since, datetime.now(timezone.utc) + timedelta(minutes=1), EXPERIMENT)}
    assert records["chatcmpl-a"].rating == "down"
    assert records["chatcmpl-a"].correction == "At most 4 g a day for adults."
    assert records["chatcmpl-a"].reason == "wrong_dose" and records["chatcmpl-a"].reviewer_role == "pharmacist"
    assert records["chatcmpl-b"].trace_id == unrated and records["chatcmpl-b"].rating is None
    with pytest.raises(TraceNotFound):
        trace_experiment_id("tr-" + "0" * 32)


def test_feedback_body_rejects_bad_values() -> None:
    ok = {"trace_id": "tr-1", "rating": "down", "reviewer_role": "physician"}
    assert FeedbackIn.model_validate(ok).reason is None
    for bad in ({"rating": "meh"}, {"reason": "too_long"}, {"reviewer_role": "nurse"}, {"extra": 1},
                {"trace_id": ""}):
        with pytest.raises(ValidationError):
            FeedbackIn.model_validate({**ok, **bad})


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_store_that_is_down_is_counted_not_raised(store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    seen: list[str] = []
    recorder = TraceRecorder(EXPERIMENT, PIISettings(), on_failure=seen.append)
    recorder.start()  # the experiment is resolved while the store is up
    try:
        mlflow.set_tracking_uri(f"http://127.0.0.1:{_closed_port()}")
        mlflow.tracing.reset()
        trace_id = recorder.begin("chatcmpl-down", "question", "drugslm-v3", time.time())
        assert trace_id is not None  # opening a trace needs no store
        recorder.finish(trace_id, "answer")
        assert recorder.written(trace_id, 60)
    finally:
        recorder.stop()
    assert seen == ["write_failed"] and recorder.failures == 1

    never_up = TraceRecorder(EXPERIMENT, PIISettings(), on_failure=seen.append)
    never_up.start()
    try:
        assert never_up.begin("chatcmpl-x", "question", "drugslm-v3", time.time()) is None
    finally:
        never_up.stop()
    assert seen[-1] == "store_unavailable"


def test_a_full_queue_drops_and_counts() -> None:
    seen: list[str] = []
    recorder = TraceRecorder(EXPERIMENT, PIISettings(), max_pending=1, on_failure=seen.append)
    recorder.finish("tr-a", "one")  # no writer running: the first waits, the second has no room
    recorder.finish("tr-b", "two")
    assert seen == ["queue_full"]


def test_export_cli_says_what_is_wrong_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from drugslm_core.cli import app

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    common = ["feedback", "export", "--out", str(tmp_path / "f.jsonl"), "--config", str(tmp_path / "none.yaml")]
    bad_time = CliRunner().invoke(app, [*common, "--since", "yesterday", "--until", "2026-01-02",
                                        "--tracking-uri", "sqlite:///x.db"])
    assert bad_time.exit_code == 2 and "--since 'yesterday' is not an ISO-8601 time" in bad_time.output
    down = CliRunner().invoke(app, [*common, "--since", "2026-01-01", "--until", "2026-01-02",
                                    "--tracking-uri", f"http://127.0.0.1:{_closed_port()}"])
    assert down.exit_code == 1 and "cannot read traces from http://127.0.0.1:" in down.output
    assert down.exception is None or isinstance(down.exception, SystemExit)
    assert not (tmp_path / "f.jsonl").exists()


def test_traces_whose_request_never_ends_are_given_up_and_counted(store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import drugslm_core.feedback.traces as traces_module

    seen: list[str] = []
    recorder = TraceRecorder(EXPERIMENT, PIISettings(), max_pending=1, on_failure=seen.append)
    recorder.start()
    try:
        forgotten = [recorder.begin(f"chatcmpl-{n}", "q", "drugslm-v3", time.time()) for n in range(4)]
        monkeypatch.setattr(traces_module, "ABANDONED_S", 0)
        recorder.begin("chatcmpl-new", "q", "drugslm-v3", time.time())  # a fifth open trace: the stale go
    finally:
        recorder.stop()
    assert seen.count("abandoned") >= 4
    assert all(recorder.written(trace_id, 0) for trace_id in forgotten if trace_id)
