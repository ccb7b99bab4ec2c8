"""``POST /v1/feedback``: a reviewer's judgement of one served answer, attached to its MLflow trace.

Body: ``{"trace_id", "rating": "up"|"down", "correction"?, "reason"?, "reviewer_role"}`` (the trace
id comes from the answer's ``X-Trace-Id`` header). 200 with the assessment ids; 401 without a
key; 422 for bad values; 404 for a trace this server did not record; 503 when the trace store
is unavailable. The correction is PII-scrubbed like the traces (feedback/store.py says how it is stored).
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError

from drugslm_core.feedback.store import FeedbackIn, TraceNotFound, attach_feedback, trace_experiment_id
from drugslm_core.feedback.traces import TraceRecorder
from drugslm_core.serving.app import ApiError


def feedback_router(traces: TraceRecorder | None, authenticated: Any, wait_s: float = 10.0) -> APIRouter:
    """The feedback route; ``authenticated`` is the app's key-checking dependency (``Depends(...)``)."""
    router = APIRouter()

    @router.post("/v1/feedback", dependencies=[authenticated])
    async def feedback(request: Request) -> dict[str, Any]:
        try:
            body = FeedbackIn.model_validate_json(await request.body())
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(map(str, first["loc"])) or "body"
            raise ApiError(422, f"invalid feedback: {where}: {first['msg']}", "invalid_request_error",
                           "invalid_value", where) from error
        if traces is None:
            raise ApiError(404, "this server records no traces (feedback.enabled is false): nothing to attach "
                           "feedback to", "invalid_request_error", "trace_not_found", "trace_id")
        # a just-served answer's trace may still be on its way to the store
        await asyncio.to_thread(traces.written, body.trace_id, wait_s)
        try:
            ids = await asyncio.to_thread(_attach, traces, body)
        except TraceNotFound as error:
            raise ApiError(404, f"no trace {body.trace_id} of this server", "invalid_request_error",
                           "trace_not_found", "trace_id") from error
        except Exception as error:  # noqa: BLE001 - the store is down or refused: say so, do not crash
            raise ApiError(503, f"the trace store is unavailable, feedback not saved: {error}", "server_error",
                           "trace_store_unavailable", headers={"Retry-After": "5"}) from error
        return {"object": "feedback", "trace_id": body.trace_id, "assessment_ids": ids}

    return router


def _attach(traces: TraceRecorder, body: FeedbackIn) -> list[str]:
    if trace_experiment_id(body.trace_id) != traces.experiment_id:
        raise TraceNotFound(body.trace_id)  # a trace of another experiment is not this server's
    correction = traces.scrub(body.correction) if body.correction else None
    return attach_feedback(body, correction)
