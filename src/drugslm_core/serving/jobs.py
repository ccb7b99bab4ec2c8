"""``/v1/fine_tuning/jobs``: OpenAI's fine-tuning job routes over :class:`FineTuneJobs`.

``POST /v1/fine_tuning/jobs`` (start; the id is the ZenML run id), ``GET /v1/fine_tuning/jobs``
(list, newest first, ``limit``/``after``), ``GET /v1/fine_tuning/jobs/{id}`` (status, metrics so
far, the gate's decision, links), ``POST /v1/fine_tuning/jobs/{id}/cancel``. Same API keys as
every ``/v1`` route; errors in OpenAI's body. Handlers are plain ``def``: FastAPI runs them in its
thread pool, so waiting for a worker never blocks the event loop (the run itself is in the worker).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Depends, Request  # at module level: FastAPI resolves the handlers' annotations here
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import ValidationError

from drugslm_core.serving.auth import ApiKeys
from drugslm_core.serving.fine_tuning import FineTuneJobs, JobError, JobRequest
from drugslm_core.serving.protocol import error_body


class _OpenAIErrors(APIRoute):
    """Turns a :class:`JobError` (from a handler or the key check) into OpenAI's error body.

    A route class rather than an app exception handler: the router brings its own error shape,
    so ``app.py`` needs one ``include_router`` line and nothing else."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Any]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Any:
            try:
                return await handler(request)
            except JobError as error:
                headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
                return JSONResponse(error_body(str(error), error.type, error.code, error.param),
                                    status_code=error.status, headers=headers)

        return handle


def fine_tuning_router(jobs: FineTuneJobs, keys: ApiKeys) -> APIRouter:
    def authenticated(request: Request) -> None:
        if not keys.accepts(request.headers.get("authorization")):
            raise JobError(401, "a valid API key is required: send Authorization: Bearer <key>",
                           "authentication_error", "invalid_api_key")

    router = APIRouter(prefix="/v1/fine_tuning/jobs", route_class=_OpenAIErrors,
                       dependencies=[Depends(authenticated)], tags=["fine-tuning"])

    @router.post("")
    async def create(request: Request) -> Any:
        try:
            body = JobRequest.model_validate_json(await request.body() or b"{}")
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(map(str, first["loc"]))
            raise JobError(400, f"invalid request: {where}: {first['msg']}", param=where) from error
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(jobs.create, body)  # waits for the worker's ZenML run, off the event loop

    @router.get("")
    def list_jobs(limit: int = 20, after: str | None = None) -> dict[str, Any]:
        return jobs.list(limit=max(1, min(limit, 100)), after=after)

    @router.get("/{job_id}")
    def retrieve(job_id: str) -> dict[str, Any]:
        return jobs.get(job_id)

    @router.post("/{job_id}/cancel")
    def cancel(job_id: str) -> dict[str, Any]:
        return jobs.cancel(job_id)

    return router
