"""The HTTP side of ``drugslm serve``: OpenAI-compatible routes over the batching engine.

Routes: ``POST /v1/chat/completions`` (``stream: true`` for SSE), ``GET /v1/models``,
``POST /v1/feedback`` (serving/feedback_routes.py), ``GET /metrics`` (Prometheus) — these need
``Authorization: Bearer <key>`` when keys are configured — and ``GET /healthz`` (``/health``),
``GET /readyz`` and the chat page ``GET /`` (which asks for the key), which never do.
With a ``TraceRecorder`` every answered completion becomes an MLflow trace; its id is sent in
``X-Trace-Id`` (feedback/traces.py).
The asyncio side validates, tokenizes, enqueues and awaits; the engine thread generates.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

# At module level: FastAPI resolves the handlers' string annotations (``from __future__ import
# annotations``) in this module's namespace, for requests and for the OpenAPI schema alike.
from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError

from drugslm_core.config import RetrievalSettings, ServingSettings
from drugslm_core.data.feedback_records import Citation
from drugslm_core.feedback.traces import TraceRecorder
from drugslm_core.serving.auth import ApiKeys
from drugslm_core.serving.engine import BatchEngine, EngineModel, Event, GenerationRequest, QueueFull, Sampling
from drugslm_core.serving.fine_tuning import FineTuneJobs
from drugslm_core.serving.grounding import ground
from drugslm_core.serving.jobs import fine_tuning_router
from drugslm_core.serving.metrics import ServerMetrics
from drugslm_core.serving.model import ServedModel, load_served_model, model_id
from drugslm_core.serving.protocol import (
    ChatCompletionRequest,
    ChatMessage,
    chunk_body,
    completion_body,
    error_body,
    usage,
)
from drugslm_core.serving.watcher import AliasWatcher

__all__ = ["ChatMessage", "ServedModel", "ServerState", "create_app", "load_served_model"]

log = logging.getLogger("drugslm.serving")


class ApiError(Exception):
    def __init__(self, status: int, message: str, type_: str, code: str | None = None,
                 param: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.body, self.headers = status, error_body(message, type_, code, param), headers or {}


class ServerState:
    """The served model, the engine, and what the alias watcher last saw."""

    def __init__(self, served: ServedModel, settings: ServingSettings, metrics: ServerMetrics | None = None,
                 retrieval: RetrievalSettings | None = None) -> None:
        self.settings = settings
        self.retrieval = retrieval or RetrievalSettings()
        self.metrics = metrics or ServerMetrics()
        self.served = served
        self._by_version: dict[str, ServedModel] = {served.version: served}
        self.pending_version: str | None = None
        self.reload_error: str | None = None
        self.engine = BatchEngine(
            served.engine_model, max_batch_size=settings.max_batch_size, max_queue=settings.max_queue,
            on_batch=self.metrics.batch_size.observe, on_swap=self._swapped,
        )
        self.metrics.waiting.set_function(lambda: self.engine.waiting)
        self.metrics.running.set_function(lambda: self.engine.running)
        self.metrics.served(served.name, served.version, served.model_id)
        self.watcher: AliasWatcher | None = None

    def follow_alias(self, resolve: Callable[[], str | None], load: Callable[[str], ServedModel], interval_s: float) -> None:
        self.watcher = AliasWatcher(
            resolve, load, lambda: self.pending_version or self.served.version,
            self.stage, self._reload_failed, interval_s,
        )

    def stage(self, served: ServedModel) -> None:
        """Serve ``served`` once the running batch has drained."""
        self._by_version[served.version] = served
        self.pending_version = served.version
        self.engine.swap(served.engine_model)

    def _swapped(self, engine_model: EngineModel) -> None:
        old = self.served
        self.served = self._by_version[engine_model.version]
        self.pending_version = None
        self.reload_error = None
        self._by_version = {self.served.version: self.served}
        self.metrics.served(self.served.name, self.served.version, self.served.model_id)
        self.metrics.reloads.inc()
        log.info("swapped v%s -> v%s", old.version, self.served.version)

    def _reload_failed(self, version: str, error: Exception) -> None:
        self.reload_error = f"loading v{version} failed: {error}; still serving v{self.served.version}"
        self.metrics.reload_failures.inc()

    def start(self) -> None:
        self.engine.start()
        if self.watcher is not None:
            self.watcher.start()

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        self.engine.stop()


def create_app(state: ServerState, keys: ApiKeys | None = None, traces: TraceRecorder | None = None,
               feedback_wait_s: float = 10.0, jobs: FineTuneJobs | None = None) -> Any:
    from fastapi import Depends, FastAPI
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    keys = keys or ApiKeys([])
    settings, metrics = state.settings, state.metrics

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        state.start()
        if traces is not None:
            traces.start()
        try:
            yield
        finally:
            state.stop()
            if traces is not None:
                traces.stop()

    app = FastAPI(title="drugslm", description="Drug-information assistant (not medical advice)", lifespan=lifespan)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, error: ApiError) -> JSONResponse:
        return JSONResponse(error.body, status_code=error.status, headers=error.headers)

    if jobs is not None:
        app.include_router(fine_tuning_router(jobs, keys))

    @app.middleware("http")
    async def count_requests(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        route = request.scope.get("route")
        metrics.requests.labels(getattr(route, "path", "other"), str(response.status_code)).inc()
        return response

    def authenticated(request: Request) -> None:
        if not keys.accepts(request.headers.get("authorization")):
            raise ApiError(401, "a valid API key is required: send Authorization: Bearer <key>",
                           "authentication_error", "invalid_api_key", headers={"WWW-Authenticate": "Bearer"})

    from drugslm_core.serving.chat_page import chat_page_router
    from drugslm_core.serving.feedback_routes import feedback_router

    app.include_router(feedback_router(traces, Depends(authenticated), feedback_wait_s))
    app.include_router(chat_page_router())

    @app.get("/healthz")
    @app.get("/health")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        ready = state.engine.alive
        body = {
            "status": "ready" if ready else "not ready",
            "model": state.served.model_id,
            "version": state.served.version,
            "loading_version": state.pending_version,
            "reload_error": state.reload_error,
        }
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", dependencies=[Depends(authenticated)])
    def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models", dependencies=[Depends(authenticated)])
    def models() -> dict[str, Any]:
        served = state.served
        return {"object": "list", "data": [
            {"id": served.model_id, "object": "model", "created": 0, "owned_by": "drugslm", "root": served.name}
        ]}

    @app.post("/v1/chat/completions", dependencies=[Depends(authenticated)])
    async def chat_completions(request: Request) -> Any:
        arrival, arrival_wall = time.monotonic(), time.time()
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > settings.max_body_bytes:
            raise _too_large(settings.max_body_bytes)
        raw = await request.body()
        if len(raw) > settings.max_body_bytes:
            raise _too_large(settings.max_body_bytes)
        try:
            body = ChatCompletionRequest.model_validate_json(raw)
        except ValidationError as error:
            first = error.errors()[0]
            raise ApiError(400, f"invalid request: {'.'.join(map(str, first['loc']))}: {first['msg']}",
                           "invalid_request_error", param=".".join(map(str, first["loc"]))) from error
        served = state.served
        if body.model not in {None, "", served.name, served.model_id}:
            raise ApiError(404, f"model {body.model!r} is not served here; this server serves {served.model_id} "
                           f"(or ask for {served.name!r})", "invalid_request_error", "model_not_found", "model")
        max_tokens = body.requested_max_tokens() or min(settings.default_max_tokens, settings.max_tokens_limit)
        if max_tokens > settings.max_tokens_limit:
            raise ApiError(422, f"max_tokens is {max_tokens}; this server allows at most {settings.max_tokens_limit}",
                           "invalid_request_error", "max_tokens_too_large", "max_tokens")
        grounding = ground(served.retriever, body.messages, body.retrieval, served.tokenizer, state.retrieval)
        if grounding.abstained:
            completion_id = f"chatcmpl-{uuid.uuid4().hex}"
            question = next((m.text for m in reversed(body.messages) if m.role == "user"), body.messages[-1].text)
            trace_id = traces.begin(completion_id, question, served.model_id, arrival_wall) if traces is not None else None
            if traces is not None:  # an abstention is an answer too: it can be rated and corrected
                traces.finish(trace_id, grounding.abstention, 0, 0, "abstained", [], time.monotonic() - arrival)
            return abstention_response(grounding.abstention, served.model_id, body.stream, served.version,
                                       completion_id, trace_id)
        try:
            prompt_ids = served.prompt_ids(grounding.messages)
        except ValueError as error:
            raise ApiError(400, str(error), "invalid_request_error", param="messages") from error
        if len(prompt_ids) > settings.max_prompt_tokens:
            raise ApiError(422, f"the prompt is {len(prompt_ids)} tokens; this server allows at most "
                           f"{settings.max_prompt_tokens}", "invalid_request_error", "context_length_exceeded", "messages")

        loop = asyncio.get_running_loop()
        events: asyncio.Queue[Event] = asyncio.Queue()
        generation = GenerationRequest(
            prompt_ids,
            Sampling(max_tokens=max_tokens, temperature=body.temperature, top_p=body.top_p,
                     stop=body.stop_strings, seed=body.seed),
            emit=lambda event: _deliver(loop, events, event, metrics),
        )
        try:
            state.engine.submit(generation)
        except QueueFull as error:
            raise ApiError(429, f"the server is busy ({settings.max_queue} requests waiting); retry shortly",
                           "rate_limit_error", "queue_full",
                           headers={"Retry-After": str(settings.retry_after_s)}) from error
        deadline = loop.time() + settings.request_timeout_s

        async def next_event() -> Event:
            try:
                return await asyncio.wait_for(events.get(), max(deadline - loop.time(), 0.0))
            except TimeoutError:
                generation.cancelled.set()
                return Event("timeout")

        start = await next_event()
        if start.kind == "timeout":
            raise ApiError(504, f"no answer within {settings.request_timeout_s:g} s; the request was cancelled",
                           "timeout_error", "timeout")
        if start.kind == "error":
            raise ApiError(500, start.text, "server_error")
        served_id = model_id(served.name, start.version)
        headers = {"X-Model-Version": start.version}
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        first_text_seen = False
        citations: list[Citation] = grounding.citations  # the chunks the answer rests on; the trace records them
        question = next((m.text for m in reversed(body.messages) if m.role == "user"), body.messages[-1].text)
        trace_id = traces.begin(completion_id, question, served_id, arrival_wall) if traces is not None else None
        if trace_id is not None:
            headers["X-Trace-Id"] = trace_id

        traced_once = False

        def traced(answer: str, event: Event | None, error: str | None = None) -> None:
            nonlocal traced_once
            if traces is not None and not traced_once:
                traced_once = True
                traces.finish(trace_id, answer, event.prompt_tokens if event else len(prompt_ids),
                              event.completion_tokens if event else 0,
                              (event.finish_reason or "stop") if event else "error", citations,
                              time.monotonic() - arrival, error)

        def observe_first() -> None:
            nonlocal first_text_seen
            if not first_text_seen:
                first_text_seen = True
                metrics.ttft.observe(time.monotonic() - arrival)

        def finished(event: Event) -> None:
            observe_first()
            metrics.latency.observe(time.monotonic() - arrival)
            metrics.prompt_tokens.inc(event.prompt_tokens)
            metrics.generation_tokens.inc(event.completion_tokens)

        async def _answer_whole(parts: list[str]) -> Any:
            while True:
                event = await next_event()
                if event.kind == "text":
                    observe_first()
                    parts.append(event.text)
                elif event.kind == "finish":
                    finished(event)
                    traced("".join(parts), event)
                    return JSONResponse({**completion_body(
                        completion_id, served_id, "".join(parts), event.finish_reason or "stop",
                        event.prompt_tokens, event.completion_tokens,
                    ), "citations": grounding.citations_json()}, headers=headers)
                elif event.kind == "timeout":
                    traced("".join(parts), None, "timeout")
                    raise ApiError(504, f"no full answer within {settings.request_timeout_s:g} s; the request was "
                                   "cancelled", "timeout_error", "timeout")
                else:
                    traced("".join(parts), None, event.text)
                    raise ApiError(500, event.text, "server_error")

        if not body.stream:
            parts: list[str] = []
            try:
                return await _answer_whole(parts)
            finally:  # no-op once traced; else the client went away (the coroutine was cancelled)
                traced("".join(parts), None, "the client went away before the answer ended")

        include_usage = bool(body.stream_options and body.stream_options.include_usage)

        async def sse() -> AsyncIterator[str]:
            created = int(time.time())
            parts: list[str] = []
            outcome: tuple[Event | None, str | None] = (None, "the client went away before the answer ended")
            try:
                yield _sse({**chunk_body(completion_id, served_id, created, {"role": "assistant", "content": ""}),
                            "citations": grounding.citations_json()})
                while True:
                    event = await next_event()
                    if event.kind == "text":
                        observe_first()
                        parts.append(event.text)
                        yield _sse(chunk_body(completion_id, served_id, created, {"content": event.text}))
                    elif event.kind == "finish":
                        finished(event)
                        outcome = (event, None)
                        yield _sse({**chunk_body(completion_id, served_id, created, {}, event.finish_reason or "stop"),
                                    "citations": grounding.citations_json()})
                        if include_usage:
                            yield _sse(chunk_body(completion_id, served_id, created, {},
                                                  usage_=usage(event.prompt_tokens, event.completion_tokens)))
                        break
                    else:  # headers are gone: the error travels in the stream, as OpenAI does
                        message = (f"no full answer within {settings.request_timeout_s:g} s" if event.kind == "timeout"
                                   else event.text)
                        outcome = (None, message)
                        yield _sse(error_body(message, "timeout_error" if event.kind == "timeout" else "server_error"))
                        break
                yield "data: [DONE]\n\n"
            finally:
                generation.cancelled.set()  # the client went away: free its batch slot (no-op once finished)
                traced("".join(parts), *outcome)

        return StreamingResponse(sse(), media_type="text/event-stream",
                                 headers={**headers, "Cache-Control": "no-cache"})

    return app


def _deliver(loop: asyncio.AbstractEventLoop, events: asyncio.Queue[Event], event: Event, metrics: ServerMetrics) -> None:
    """Hand an engine event to the request's coroutine (called in the engine thread)."""
    if event.finish_reason == "cancelled":
        metrics.cancelled.inc()  # nobody awaits it any more
        return
    loop.call_soon_threadsafe(events.put_nowait, event)


def abstention_response(message: str, served_id: str, stream: bool, version: str, completion_id: str,
                        trace_id: str | None) -> Any:
    """The fixed abstention answer, without running the model: no citations, nothing generated."""
    headers = {"X-Model-Version": version, "X-Retrieval": "abstained"}
    if trace_id is not None:
        headers["X-Trace-Id"] = trace_id
    if not stream:
        return JSONResponse({**completion_body(completion_id, served_id, message, "stop", 0, 0), "citations": [],
                             "abstained": True}, headers=headers)
    created = int(time.time())

    async def sse() -> AsyncIterator[str]:
        yield _sse({**chunk_body(completion_id, served_id, created, {"role": "assistant", "content": ""}), "citations": []})
        yield _sse(chunk_body(completion_id, served_id, created, {"content": message}))
        yield _sse({**chunk_body(completion_id, served_id, created, {}, "stop"), "citations": [], "abstained": True})
        yield "data: [DONE]\n\n"

    return StreamingResponse(sse(), media_type="text/event-stream", headers={**headers, "Cache-Control": "no-cache"})


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"the request body is larger than {limit} bytes", "invalid_request_error", "request_too_large")


def _sse(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"
