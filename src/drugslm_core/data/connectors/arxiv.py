"""arXiv preprints through its Atom API (``/api/query?search_query=…&start=…&max_results=…``).

Shape (info.arxiv.org/help/api/user-manual.html): an Atom ``<feed>`` with
``opensearch:totalResults``/``startIndex``/``itemsPerPage`` and one ``<entry>`` per paper
(``<id>http://arxiv.org/abs/…</id>``, ``<title>``, ``<summary>``, ``<published>``,
``<author><name>``, ``<link rel="alternate">``). arXiv asks for one request every 3 seconds
(the default rate here).

The API sometimes answers a valid feed with no entries while ``start < totalResults``
(a known intermittent fault; the ``arxiv`` Python client retries it). Such a page is asked
again up to ``empty_page_retries`` times; if it stays empty, the run stops with "fetched N
of M" and the source is not marked done (the next run asks the same page again). One query
reaches at most 30,000 results (arXiv user manual): past that the run stops the same way.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET

from drugslm_core.config import ArxivSettings
from drugslm_core.data.connectors.base import Connector, ConnectorError, Cursor, HttpFetcher, Page
from drugslm_core.data.documents import Document, DocumentSection, RawPayload

logger = logging.getLogger(__name__)
ATOM = "{http://www.w3.org/2005/Atom}"
MAX_RESULTS = 30_000
"""arXiv returns at most this many results of one query."""
OPENSEARCH = "{http://a9.com/-/spec/opensearch/1.1/}"


def _text(element: ET.Element | None) -> str:
    return " ".join("".join(element.itertext()).split()) if element is not None else ""


def entry_document(entry: ET.Element, topic: str, payload_id: str, where: str) -> Document:
    arxiv_url = _text(entry.find(f"{ATOM}id"))
    if not arxiv_url:
        raise ConnectorError("arxiv", where, "entry has no id", field="id")
    arxiv_id = arxiv_url.rsplit("/abs/", 1)[-1]
    summary = _text(entry.find(f"{ATOM}summary"))
    return Document(
        id=f"arxiv:{arxiv_id}", title=topic, source="arxiv", locator=f"arXiv {arxiv_id}", kind="preprint",
        url=arxiv_url,
        sections=[DocumentSection(name="abstract", heading="Abstract", text=summary)] if summary else [],
        metadata={
            "article_title": _text(entry.find(f"{ATOM}title")),
            "published": _text(entry.find(f"{ATOM}published")),
            "authors": ", ".join(_text(a.find(f"{ATOM}name")) for a in entry.findall(f"{ATOM}author")),
        },
        payload_ids=[payload_id],
    )


class ArxivConnector(Connector):
    name = "arxiv"

    def __init__(self, settings: ArxivSettings):
        if not settings.search_query.strip():
            raise ValueError("data.connectors.arxiv.search_query is empty: say what to search for")
        self.settings = settings

    def initial_cursor(self) -> Cursor:
        return {"start": 0}

    def fetch_page(self, http: HttpFetcher, cursor: Cursor, want: int) -> Page:
        start = int(cursor.get("start", 0))
        if start >= MAX_RESULTS:
            return Page([], cursor, stopped=self._limit_message(start, cursor.get("total", "?")))
        size = max(1, min(self.settings.page_size, want, MAX_RESULTS - start))
        params = {"search_query": self.settings.search_query, "start": start, "max_results": size}
        where = f"{self.settings.base_url} start={start}"
        for attempt in range(self.settings.empty_page_retries + 1):
            response = http.get(self.settings.base_url, params)
            total, entries = self._parse(response.content, where)
            if entries or start >= total:
                break
            if attempt < self.settings.empty_page_retries:
                logger.warning("arxiv: empty page at start=%d of %d results; asking again (%d)", start, total, attempt + 1)
        payload_id = RawPayload.digest(response.content)
        documents = [
            entry_document(e, self.settings.search_query, payload_id, f"{where} entry {i}")
            for i, e in enumerate(entries)
        ]
        if not entries and start < total:
            stopped = (
                f"fetched {start} of {total} arXiv results: the page at start={start} stayed empty after "
                f"{self.settings.empty_page_retries} retries (the source is not marked done; the next run asks again)"
            )
            return Page(documents, {"start": start}, total=total, stopped=stopped)
        next_start = start + len(entries)
        if not entries or next_start >= total:
            return Page(documents, None, total=total)
        if next_start >= MAX_RESULTS:
            return Page(documents, {"start": next_start, "total": total}, total=total,
                        stopped=self._limit_message(next_start, total))
        return Page(documents, {"start": next_start}, total=total)

    def _parse(self, content: bytes, where: str) -> tuple[int, list[ET.Element]]:
        try:
            feed = ET.fromstring(content)
        except ET.ParseError as error:
            raise ConnectorError(self.name, where, f"invalid Atom XML ({error})") from error
        if feed.tag != f"{ATOM}feed":
            raise ConnectorError(self.name, where, f"expected an Atom <feed>, got <{feed.tag}>")
        try:
            total = int(feed.findtext(f"{OPENSEARCH}totalResults") or "")
        except ValueError as error:
            raise ConnectorError(self.name, where, "missing or not an integer", field="opensearch:totalResults") from error
        return total, feed.findall(f"{ATOM}entry")

    @staticmethod
    def _limit_message(reached: int, total: object) -> str:
        return (
            f"fetched {reached} of {total} arXiv results: one query reaches at most {MAX_RESULTS:,}; "
            "narrow data.connectors.arxiv.search_query (the source is not marked done)"
        )
