"""What every source connector shares: polite HTTP with retries, paging, a resumable cursor, raw payloads.

A connector only knows its API: where to start (:meth:`Connector.initial_cursor`)
and how to turn one page into documents plus the next cursor
(:meth:`Connector.fetch_page`). :func:`run_connector` does the rest: it resumes
from the stored cursor, stops at ``max_documents`` or ``http.max_pages`` (a
runaway cursor cannot loop forever), saves the cursor after every page, and
returns every response body it received as a :class:`RawPayload`.
"""

from __future__ import annotations

import email.utils
import json
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt
from tqdm.auto import tqdm

from drugslm_core.config import HttpSettings
from drugslm_core.data.documents import Document, RawPayload

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


class RetryableResponse(Exception):
    """A response worth retrying (429, 5xx); carries the server's Retry-After when it gave one."""

    def __init__(self, response: httpx.Response):
        super().__init__(f"HTTP {response.status_code} from {response.request.url}")
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

    def __init__(self, source: str, settings: HttpSettings, headers: Mapping[str, str] | None = None):
        self.source = source
        self.settings = settings
        self.limiter = RateLimiter(settings.requests_per_second)
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
        if response.status_code in RETRYABLE_STATUS:
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
            raise ConnectorError(
                self.source, str(error.response.request.url),
                f"HTTP {error.response.status_code} after {self.settings.max_retries} attempts",
            ) from error
        except httpx.HTTPError as error:
            raise ConnectorError(
                self.source, url, f"{type(error).__name__}: {error} after {self.settings.max_retries} attempts"
            ) from error
        if not response.is_success and response.status_code not in accept:
            raise ConnectorError(
                self.source, str(response.request.url), f"HTTP {response.status_code}: {response.text[:200]!r}"
            )
        body = response.content
        payload = RawPayload(
            id=RawPayload.digest(body), source=self.source, url=str(response.request.url),
            status=response.status_code, content_type=response.headers.get("content-type", ""), body=body,
        )
        self.payloads.setdefault(payload.id, payload)
        return response

    def get_json(
        self, url: str, params: Mapping[str, Any] | None = None, accept: tuple[int, ...] = ()
    ) -> tuple[Any, str]:
        """Parsed JSON and the payload id of the response."""
        response = self.get(url, params, accept)
        try:
            return response.json(), RawPayload.digest(response.content)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ConnectorError(self.source, str(response.request.url), f"response is not valid JSON ({error})") from error


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
            value = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ConnectorError(name, str(path), f"stored cursor is not valid JSON ({error.msg})") from error
        if not isinstance(value, dict):
            raise ConnectorError(name, str(path), "stored cursor is not a JSON object")
        return value

    def save(self, name: str, cursor: Cursor) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self._path(name).with_suffix(".tmp")
        tmp.write_text(json.dumps(cursor, sort_keys=True), encoding="utf-8")
        tmp.replace(self._path(name))  # atomic: a crash never leaves half a cursor


@dataclass
class Page:
    documents: list[Document]
    next_cursor: Cursor | None
    """``None`` when the source has no more pages."""


class Connector(ABC):
    name: str

    def headers(self) -> dict[str, str]:
        return {}

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
    pages: int = 0
    requests: int = 0
    retries: int = 0
    start_cursor: Cursor | None = None
    end_cursor: Cursor | None = None
    exhausted: bool = False


def run_connector(
    connector: Connector, http: HttpSettings, max_documents: int, state: CursorStore | None = None
) -> ConnectorRun:
    """Fetch up to ``max_documents`` from where the last run stopped (when ``state`` is given)."""
    stored = state.load(connector.name) if state else None
    run = ConnectorRun(source=connector.name, start_cursor=stored)
    if stored and stored.get("done"):
        logger.info("%s: stored cursor says the source is exhausted; nothing to fetch", connector.name)
        run.exhausted, run.end_cursor = True, stored
        return run
    cursor: Cursor | None = stored or connector.initial_cursor()
    with HttpFetcher(connector.name, http, connector.headers()) as fetcher, tqdm(
        total=max_documents, desc=connector.name, unit="doc", disable=None
    ) as progress:
        while cursor is not None and len(run.documents) < max_documents and run.pages < http.max_pages:
            page = connector.fetch_page(fetcher, cursor, max_documents - len(run.documents))
            run.pages += 1
            run.documents.extend(page.documents)
            progress.update(len(page.documents))
            cursor = page.next_cursor
            if state:
                state.save(connector.name, cursor if cursor is not None else {"done": True})
        run.payloads = list(fetcher.payloads.values())
        run.requests, run.retries = fetcher.requests, fetcher.retries
    run.exhausted = cursor is None
    run.end_cursor = cursor
    logger.info(
        "%s: %d documents, %d pages, %d requests, %d retries", connector.name, len(run.documents),
        run.pages, run.requests, run.retries,
    )
    return run
