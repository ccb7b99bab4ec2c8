"""What every source connector shares: polite HTTP with retries, paging, a resumable cursor, raw payloads.

A connector only knows its API: where to start (:meth:`Connector.initial_cursor`)
and how to turn one page into documents plus the next cursor
(:meth:`Connector.fetch_page`). :func:`run_connector` does the rest: it first
replays pages an earlier run fetched but never handed to ingest, resumes from the
stored cursor, stops at ``max_documents`` or ``http.max_pages`` (a runaway cursor
cannot loop forever), stages every page (documents + raw bodies) on disk BEFORE
it moves the cursor, and returns every response body it received as a
:class:`RawPayload`. A page that hit a service's paging limit says so
(:attr:`Page.stopped`): the run reports "fetched N of M" and the source is not
recorded as done.
"""

from __future__ import annotations

import base64
import email.utils
import json
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt
from tqdm.auto import tqdm

from drugslm_core.config import HttpSettings
from drugslm_core.data.documents import Document, RawPayload
from drugslm_core.data.records import QuarantinedRecord

logger = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
Cursor = dict[str, Any]


class ConnectorError(RuntimeError):
    """A source could not be fetched or its response could not be read.

    The message names the connector, where (URL or record) and, when known, the field.
    """

    def __init__(self, source: str, where: str, message: str, field: str | None = None):
        text = f"{source}: {where}"
        if field is not None:
            text += f", field {field!r}"
        super().__init__(f"{text}: {message}")
        self.source = source
        self.where = where
        self.field = field
        self.status: int | None = None
        """The HTTP status that ended the request, when it was one."""
        self.run: ConnectorRun | None = None
        """What :func:`run_connector` had fetched (and staged) before the failure."""


class ConnectorResponse(BaseModel):
    """A JSON shape a connector reads: only the fields it uses, the rest ignored.

    Strict, as the ``isinstance`` checks it replaces were: a number where text is expected
    (or the reverse) is an error, never coerced; a field may opt out with ``Field(strict=False)``.
    """

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


ResponseT = TypeVar("ResponseT", bound=BaseModel)


def error_field(error: ValidationError) -> tuple[str | None, str]:
    """The first failing field of a validation error (``meta.results.total``, ``idlist[2]``) and its message."""
    first = error.errors(include_url=False)[0]
    field = ""
    for part in first["loc"]:
        field += f"[{part}]" if isinstance(part, int) else (f".{part}" if field else str(part))
    message = first["msg"] if first["type"] == "missing" else f"{first['msg']} (got {type(first['input']).__name__})"
    return field or None, message


def parse_response(model: type[ResponseT], data: Any, source: str, where: str) -> ResponseT:
    """``data`` as ``model``; a :class:`ConnectorError` naming the source, ``where`` and the field otherwise."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        field, message = error_field(error)
        raise ConnectorError(source, where, message, field=field) from error


SECRET_PARAMS = ("api_key",)


def redacted(url: httpx.URL | str) -> str:
    """The URL with API keys masked: raw payloads, errors and logs never carry a key."""
    url = httpx.URL(str(url))
    for name in SECRET_PARAMS:
        if name in url.params:
            url = url.copy_set_param(name, "***")
    return str(url)


class RetryableResponse(Exception):
    """A response worth retrying (429, 5xx); carries the server's Retry-After when it gave one."""

    def __init__(self, response: httpx.Response):
        super().__init__(f"HTTP {response.status_code} from {redacted(response.request.url)}")
        self.response = response
        self.retry_after = _retry_after_seconds(response.headers.get("retry-after"))


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


class RateLimiter:
    """At most ``per_second`` calls per second (minimum spacing between call starts)."""

    def __init__(
        self, per_second: float, clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self._clock, self._sleep = clock, sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> float:
        """Block until the next call may start; returns the seconds slept."""
        with self._lock:
            now = self._clock()
            delay = max(0.0, self._next - now)
            if delay:
                self._sleep(delay)
            self._next = max(now, self._next) + self.interval
            return delay


class HttpFetcher:
    """GET with a rate limit, exponential-backoff retries, and a copy of every body received."""

    def __init__(
        self, source: str, settings: HttpSettings, headers: Mapping[str, str] | None = None,
        retry_statuses: frozenset[int] = RETRYABLE_STATUS, requests_per_second: float | None = None,
    ):
        self.source = source
        self.settings = settings
        self.retry_statuses = retry_statuses
        self.limiter = RateLimiter(settings.requests_per_second if requests_per_second is None else requests_per_second)
        self.client = httpx.Client(
            timeout=settings.timeout_s,
            headers={"User-Agent": settings.user_agent, **(headers or {})},
            follow_redirects=True,
        )
        self.payloads: dict[str, RawPayload] = {}
        self.requests = 0
        self.retries = 0

    def __enter__(self) -> HttpFetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def _wait(self, state: RetryCallState) -> float:
        base = min(self.settings.max_backoff_s, self.settings.backoff_s * (2 ** (state.attempt_number - 1)))
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RetryableResponse) and error.retry_after is not None:
            base = max(base, min(error.retry_after, self.settings.max_backoff_s))
        return base

    def _before_sleep(self, state: RetryCallState) -> None:
        self.retries += 1
        error = state.outcome.exception() if state.outcome else None
        logger.warning("%s: retry %d after %s", self.source, state.attempt_number, error)

    def _get_once(self, url: str, params: Mapping[str, Any] | None) -> httpx.Response:
        self.limiter.wait()
        self.requests += 1
        response = self.client.get(url, params=params)
        if response.status_code in self.retry_statuses:
            raise RetryableResponse(response)
        return response

    def get(
        self, url: str, params: Mapping[str, Any] | None = None, accept: tuple[int, ...] = ()
    ) -> httpx.Response:
        """The response (2xx or a status in ``accept``); :class:`ConnectorError` after the last retry
        or on any other status."""
        retrying = Retrying(
            stop=stop_after_attempt(max(1, self.settings.max_retries)),
            wait=self._wait,
            retry=retry_if_exception_type((RetryableResponse, httpx.TransportError)),
            before_sleep=self._before_sleep,
            reraise=True,
        )
        try:
            response = retrying(self._get_once, url, params)
        except RetryableResponse as error:
            failure = ConnectorError(
                self.source, redacted(error.response.request.url),
                f"HTTP {error.response.status_code} after {self.settings.max_retries} attempts",
            )
            failure.status = error.response.status_code
            raise failure from error
        except httpx.HTTPError as error:
            raise ConnectorError(
                self.source, redacted(url), f"{type(error).__name__}: {error} after {self.settings.max_retries} attempts"
            ) from error
        if not response.is_success and response.status_code not in accept:
            failure = ConnectorError(
                self.source, redacted(response.request.url), f"HTTP {response.status_code}: {response.text[:200]!r}"
            )
            failure.status = response.status_code
            raise failure
        body = response.content
        payload = RawPayload(
            id=RawPayload.digest(body), source=self.source, url=redacted(response.request.url),
            status=response.status_code, content_type=response.headers.get("content-type", ""), body=body,
        )
        self.payloads.setdefault(payload.id, payload)
        return response

    def get_json(
        self, url: str, params: Mapping[str, Any] | None = None, accept: tuple[int, ...] = ()
    ) -> tuple[Any, str]:
        """Parsed JSON and the payload id of the response."""
        return self.json_of(self.get(url, params, accept))

    def json_of(self, response: httpx.Response) -> tuple[Any, str]:
        """Parsed JSON of a response :meth:`get` returned, and its payload id."""
        try:
            return response.json(), RawPayload.digest(response.content)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ConnectorError(self.source, redacted(response.request.url), f"response is not valid JSON ({error})") from error


_CURSOR: TypeAdapter[Cursor] = TypeAdapter(Cursor)


class CursorStore:
    """One JSON file per connector holding the cursor to resume from (``{"done": true}`` once exhausted)."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def _path(self, name: str) -> Path:
        return self.directory / f"{name}.cursor.json"

    def load(self, name: str) -> Cursor | None:
        path = self._path(name)
        if not path.is_file():
            return None
        try:
            return _CURSOR.validate_json(path.read_bytes())
        except ValidationError as error:
            first = error.errors(include_url=False)[0]
            what = "valid JSON" if first["type"] == "json_invalid" else "a JSON object"
            raise ConnectorError(name, str(path), f"stored cursor is not {what} ({first['msg']})") from error

    def save(self, name: str, cursor: Cursor) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self._path(name).with_suffix(".tmp")
        tmp.write_text(json.dumps(cursor, sort_keys=True), encoding="utf-8")
        tmp.replace(self._path(name))  # atomic: a crash never leaves half a cursor


class StagingArea:
    """Pages a connector fetched, kept on disk until ingest has them: nothing fetched is lost.

    Each page is one JSON file (its documents, quarantine entries and new raw bodies,
    base64) under ``<state_dir>/staged/<source>/``, written atomically BEFORE the cursor
    moves past it. The next run replays every file still there; :meth:`acknowledge`
    deletes the files once ingest holds their documents.
    """

    def __init__(self, directory: Path, source: str):
        self.directory = Path(directory) / "staged" / source
        self.source = source

    def stage(self, documents: list[Document], payloads: list[RawPayload], quarantine: list[QuarantinedRecord]) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        existing = sorted(self.directory.glob("page-*.json"))
        number = int(existing[-1].stem.split("-")[1]) + 1 if existing else 1
        path = self.directory / f"page-{number:06d}.json"
        content = {
            "documents": [d.model_dump(mode="json") for d in documents],
            "quarantine": [q.model_dump(mode="json") for q in quarantine],
            "payloads": [
                p.model_dump(mode="json", exclude={"body"}) | {"body": base64.b64encode(p.body).decode("ascii")}
                for p in payloads
            ],
        }
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(content), encoding="utf-8")
        tmp.replace(path)  # atomic: a crash leaves the whole page or none of it
        return path

    def staged(self) -> list[Path]:
        return sorted(self.directory.glob("page-*.json")) if self.directory.is_dir() else []

    def load(self, path: Path) -> tuple[list[Document], list[RawPayload], list[QuarantinedRecord]]:
        try:
            content = json.loads(path.read_text(encoding="utf-8"))
            documents = [Document.model_validate(d) for d in content["documents"]]
            quarantine = [QuarantinedRecord.model_validate(q) for q in content.get("quarantine", [])]
            payloads = [
                RawPayload.model_validate(p | {"body": base64.b64decode(p["body"])}) for p in content["payloads"]
            ]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ConnectorError(
                self.source, str(path), f"staged page cannot be read ({type(error).__name__}: {error}); "
                "move it aside to go on without it"
            ) from error
        return documents, payloads, quarantine

    @staticmethod
    def acknowledge(paths: list[Path]) -> None:
        """Ingest holds these pages' documents: delete the staged files."""
        for path in paths:
            path.unlink(missing_ok=True)


@dataclass
class Page:
    documents: list[Document]
    next_cursor: Cursor | None
    """``None`` when the source has no more pages (or, with ``stopped``, none reachable from here)."""
    total: int | None = None
    """How many documents the service reports for the query, when it says."""
    stopped: str | None = None
    """Why paging stopped before ``total`` (a service limit): the source is then NOT recorded as done,
    and ``next_cursor`` (when given) is saved to resume from."""
    quarantine: list[QuarantinedRecord] = field(default_factory=list)
    """Items of this page that could not become documents, each with its reason."""


class Connector(ABC):
    name: str
    retry_statuses: frozenset[int] = RETRYABLE_STATUS
    """Statuses retried with backoff (ANVISA adds 403: Cloudflare blocks are temporary)."""

    def headers(self) -> dict[str, str]:
        return {}

    def requests_per_second(self, http: HttpSettings) -> float:
        """The rate to keep to (PubMed: higher with an API key)."""
        return http.requests_per_second

    @abstractmethod
    def initial_cursor(self) -> Cursor: ...

    @abstractmethod
    def fetch_page(self, http: HttpFetcher, cursor: Cursor, want: int) -> Page:
        """One page starting at ``cursor``, asking for at most ``want`` documents."""


@dataclass
class ConnectorRun:
    source: str
    documents: list[Document] = field(default_factory=list)
    payloads: list[RawPayload] = field(default_factory=list)
    quarantine: list[QuarantinedRecord] = field(default_factory=list)
    pages: int = 0
    requests: int = 0
    retries: int = 0
    start_cursor: Cursor | None = None
    end_cursor: Cursor | None = None
    exhausted: bool = False
    replayed: int = 0
    """Documents of pages an earlier run fetched and staged but never handed to ingest."""
    total: int | None = None
    """What the service reports for the query (last page seen)."""
    stopped: str | None = None
    """Set when a service limit stopped paging before the total ("fetched N of M: …")."""
    error: str | None = None
    """Set by :func:`run_enabled_connectors` when the source failed (other sources still ran)."""
    staged: list[Path] = field(default_factory=list)
    """Staged page files this run holds; :func:`acknowledge_runs` deletes them once ingest has the documents."""


def run_connector(
    connector: Connector, http: HttpSettings, max_documents: int, state: CursorStore | None = None
) -> ConnectorRun:
    """Fetch up to ``max_documents`` from where the last run stopped (when ``state`` is given).

    With ``state``, pages staged by an earlier run that never reached ingest come first,
    and every new page is staged before the cursor moves past it. On a
    :class:`ConnectorError` the partial run (already staged) rides on ``error.run``.
    """
    staging = StagingArea(state.directory, connector.name) if state else None
    run = ConnectorRun(source=connector.name)
    seen: set[str] = set()
    if staging:
        for path in staging.staged():
            documents, payloads, quarantine = staging.load(path)
            run.documents.extend(documents)
            run.payloads.extend(payloads)
            run.quarantine.extend(quarantine)
            run.staged.append(path)
            run.replayed += len(documents)
    seen.update(d.id for d in run.documents)
    if run.replayed:
        logger.info("%s: replaying %d staged documents an earlier run fetched", connector.name, run.replayed)
    stored = state.load(connector.name) if state else None
    run.start_cursor = stored
    if stored and stored.get("done"):
        logger.info("%s: stored cursor says the source is exhausted; nothing to fetch", connector.name)
        run.exhausted, run.end_cursor = True, stored
        return run
    cursor: Cursor | None = stored or connector.initial_cursor()
    fetched = 0
    staged_payloads = {p.id for p in run.payloads}
    with HttpFetcher(
        connector.name, http, connector.headers(), connector.retry_statuses, connector.requests_per_second(http)
    ) as fetcher, tqdm(total=max_documents, desc=connector.name, unit="doc", disable=None) as progress:
        try:
            while cursor is not None and fetched < max_documents and run.pages < http.max_pages:
                page = connector.fetch_page(fetcher, cursor, max_documents - fetched)
                run.pages += 1
                fetched += len(page.documents)
                new = [d for d in page.documents if d.id not in seen]  # a page staged twice (crash between
                seen.update(d.id for d in new)  # staging and the cursor save) is not ingested twice
                payloads = [p for p in fetcher.payloads.values() if p.id not in staged_payloads]
                staged_payloads.update(p.id for p in payloads)
                if staging:
                    run.staged.append(staging.stage(new, payloads, page.quarantine))
                run.documents.extend(new)
                run.payloads.extend(payloads)
                run.quarantine.extend(page.quarantine)
                progress.update(len(page.documents))
                if page.total is not None:
                    run.total = page.total
                if page.stopped:
                    run.stopped = page.stopped
                    logger.warning("%s: %s", connector.name, page.stopped)
                    if state:  # resumable from here, never marked done
                        state.save(connector.name, page.next_cursor or cursor)
                    cursor = page.next_cursor or cursor
                    break
                cursor = page.next_cursor
                if state:
                    state.save(connector.name, cursor if cursor is not None else {"done": True})
        except ConnectorError as error:
            run.requests, run.retries, run.end_cursor = fetcher.requests, fetcher.retries, cursor
            error.run = run
            raise
        run.requests, run.retries = fetcher.requests, fetcher.retries
    run.exhausted = cursor is None and run.stopped is None
    run.end_cursor = cursor
    logger.info(
        "%s: %d documents (%d replayed), %d pages, %d requests, %d retries", connector.name, len(run.documents),
        run.replayed, run.pages, run.requests, run.retries,
    )
    return run


def acknowledge_runs(runs: list[ConnectorRun]) -> None:
    """Ingest holds these runs' documents: their staged pages are no longer needed."""
    for run in runs:
        StagingArea.acknowledge(run.staged)
        run.staged = []
