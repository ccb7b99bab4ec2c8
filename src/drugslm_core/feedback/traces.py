"""Every served chat completion as an MLflow trace, written off the request path.

``TraceRecorder.begin`` opens the trace's root span in memory when the answer starts (no network:
the trace id goes back to the client in ``X-Trace-Id`` before the first token);
``TraceRecorder.finish`` hands the finished request to one writer thread, which ends the span
(MLflow exports it, synchronously, in that thread) and reads the trace back to confirm it was
stored. A store that is down or slow never delays or breaks serving: the writer's failures and
the traces dropped when ``max_pending`` are waiting (or whose request never ended) are counted (``on_failure(reason)``, a
Prometheus counter in the server) and logged once a minute at most.

What one trace holds (docs/serving.md): the question (last user message) and the answer,
PII-scrubbed with the data layer's scrubber; the request id; the served model version; prompt
and completion tokens; latency; finish reason; the retrieval citations (empty without retrieval).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from drugslm_core.config import PIISettings
from drugslm_core.data.feedback_records import Citation
from drugslm_core.data.pii import scrub_pii

log = logging.getLogger("drugslm.feedback")

TRACE_NAME = "chat_completion"
TAG_REQUEST_ID = "drugslm.request_id"
TAG_MODEL_VERSION = "drugslm.model_version"
ATTR_CITATIONS = "drugslm.citations"
ABANDONED_S = 3600
"""An opened trace whose request has not finished after this long is given up (MLflow's own buffer TTL)."""


def resolve_experiment_id(name: str) -> str:
    """The id of the MLflow experiment ``name`` in the current tracking store (created when missing)."""
    import mlflow

    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(name)
    return experiment.experiment_id if experiment is not None else client.create_experiment(name)


@dataclass
class _Open:
    span: Any
    arrival: float
    written: threading.Event = field(default_factory=threading.Event)


@dataclass
class _Finished:
    trace_id: str
    answer: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    citations: list[Citation]
    latency_s: float
    error: str | None
    end_ns: int


class TraceRecorder:
    """Traces of served requests in the MLflow experiment ``experiment`` of the current tracking store."""

    def __init__(self, experiment: str, pii: PIISettings | None = None, max_pending: int = 256,
                 on_failure: Callable[[str], None] | None = None) -> None:
        import mlflow

        # MLflow's own async export queue logs a failed write and drops it: nothing to count.
        # We export synchronously in our writer thread instead, so each failure is seen (and counted)
        # and the request path never waits. The env var is read when the tracer provider starts.
        os.environ["MLFLOW_ENABLE_ASYNC_TRACE_LOGGING"] = "false"
        mlflow.tracing.reset()
        self.experiment = experiment
        self.pii = pii or PIISettings()
        self._on_failure = on_failure or (lambda reason: None)
        self._queue: queue.Queue[_Finished | None] = queue.Queue(maxsize=max_pending)
        self._open: dict[str, _Open] = {}
        self._lock = threading.Lock()
        self._experiment_id: str | None = None
        self._thread: threading.Thread | None = None
        self._last_warning = 0.0
        self.failures = 0

    @property
    def experiment_id(self) -> str | None:
        """The trace experiment's id (None until the store has been reached)."""
        return self._experiment_id

    # -- the request path (no network) -------------------------------------------------------

    def scrub(self, text: str) -> str:
        if not self.pii.enabled:
            return text
        return scrub_pii(text, self.pii.kinds, self.pii.allow)[0]

    def begin(self, request_id: str, question: str, model_version: str, arrival_wall_s: float) -> str | None:
        """Open the trace of a request whose answer has started; its trace id, or None (counted) when
        the store has not been reachable yet."""
        import mlflow

        if self._experiment_id is None:
            self._fail("store_unavailable", f"no trace for {request_id}: the experiment {self.experiment!r} "
                       "could not be read from the tracking store yet")
            return None
        try:
            span = mlflow.start_span_no_context(
                TRACE_NAME, span_type="LLM", inputs={"question": self.scrub(question)},
                attributes={"request_id": request_id, "model_version": model_version},
                tags={TAG_REQUEST_ID: request_id, TAG_MODEL_VERSION: model_version},
                experiment_id=self._experiment_id, start_time_ns=int(arrival_wall_s * 1e9),
            )
        except Exception as error:  # noqa: BLE001 - tracing must never break serving
            self._fail("start_failed", f"no trace for {request_id}: {error}")
            return None
        with self._lock:
            self._open[span.trace_id] = _Open(span, time.monotonic())
            stale = self._stale() if len(self._open) > 4 * self._queue.maxsize else []
        for trace_id in stale:
            self._fail("abandoned", f"trace {trace_id} dropped: its request never finished within {ABANDONED_S} s")
        return str(span.trace_id)

    def _stale(self) -> list[str]:
        """Open traces whose request never reported its end (a stream nobody started reading): forgotten,
        so that the open traces stay bounded. Called with the lock held."""
        cutoff = time.monotonic() - ABANDONED_S
        stale = [trace_id for trace_id, opened in self._open.items() if opened.arrival < cutoff]
        for trace_id in stale:
            self._open.pop(trace_id).written.set()
        return stale

    def finish(self, trace_id: str | None, answer: str, prompt_tokens: int = 0, completion_tokens: int = 0,
               finish_reason: str = "stop", citations: Iterable[Citation] = (), latency_s: float = 0.0,
               error: str | None = None) -> None:
        """Queue the finished request for the writer (dropped and counted when ``max_pending`` wait)."""
        if trace_id is None:
            return
        item = _Finished(trace_id, answer, prompt_tokens, completion_tokens, finish_reason, list(citations),
                         latency_s, error, time.time_ns())
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            with self._lock:
                opened = self._open.pop(trace_id, None)
            if opened is not None:
                opened.written.set()
            self._fail("queue_full", f"trace {trace_id} dropped: {self._queue.maxsize} traces wait to be written")

    def written(self, trace_id: str, timeout_s: float) -> bool:
        """Wait (up to ``timeout_s``) until a trace opened here has been handled by the writer; True
        when there is nothing to wait for."""
        with self._lock:
            opened = self._open.get(trace_id)
        return True if opened is None else opened.written.wait(timeout_s)

    # -- the writer thread --------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="drugslm-trace-writer", daemon=True)
            self._thread.start()
        self._connect()

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout_s)
        self._thread = None

    def _connect(self) -> bool:
        if self._experiment_id is not None:
            return True
        try:
            self._experiment_id = resolve_experiment_id(self.experiment)
            return True
        except Exception as error:  # noqa: BLE001 - a store that is down: serve anyway, try again later
            self._warn(f"traces are not recorded: the tracking store is unavailable ({error})")
            return False

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=5.0)
            except queue.Empty:
                self._connect()
                continue
            if item is None:
                return
            try:
                self._write(item)
            except Exception as error:  # noqa: BLE001 - the writer must keep running
                self._fail("write_failed", f"trace {item.trace_id} not written: {error}")
            finally:
                with self._lock:
                    opened = self._open.pop(item.trace_id, None)
                if opened is not None:
                    opened.written.set()

    def _write(self, item: _Finished) -> None:
        from mlflow.entities import SpanStatusCode
        from mlflow.tracing.client import TracingClient

        with self._lock:
            opened = self._open.get(item.trace_id)
        if opened is None:
            return
        span = opened.span
        span.set_attributes({
            "prompt_tokens": item.prompt_tokens, "completion_tokens": item.completion_tokens,
            "latency_s": round(item.latency_s, 4), "finish_reason": item.finish_reason,
            ATTR_CITATIONS: [citation.model_dump() for citation in item.citations],
        })
        span.set_outputs({"answer": self.scrub(item.answer)})
        if item.error is not None:
            span.set_status(SpanStatusCode.ERROR)
            span.set_attribute("error", item.error)
        span.end(end_time_ns=item.end_ns)  # exports now, in this thread (errors are only logged by MLflow)
        TracingClient().get_trace_info(item.trace_id)  # raises when the store did not get it

    def _fail(self, reason: str, message: str) -> None:
        self.failures += 1
        self._on_failure(reason)
        self._warn(message)

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last_warning > 60:
            self._last_warning = now
            log.warning("%s (failures so far: %d; drugslm_trace_failures_total on /metrics)", message, self.failures)
