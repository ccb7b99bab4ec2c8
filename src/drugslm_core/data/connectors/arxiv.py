"""arXiv preprints through its Atom API (``/api/query?search_query=…&start=…&max_results=…``).

Shape (info.arxiv.org/help/api/user-manual.html): an Atom ``<feed>`` with
``opensearch:totalResults``/``startIndex``/``itemsPerPage`` and one ``<entry>`` per paper
(``<id>http://arxiv.org/abs/…</id>``, ``<title>``, ``<summary>``, ``<published>``,
``<author><name>``, ``<link rel="alternate">``). arXiv asks for one request every 3 seconds.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from drugslm_core.config import ArxivSettings
from drugslm_core.data.connectors.base import Connector, ConnectorError, Cursor, HttpFetcher, Page
from drugslm_core.data.documents import Document, DocumentSection, RawPayload

ATOM = "{http://www.w3.org/2005/Atom}"
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
        size = max(1, min(self.settings.page_size, want))
        params = {"search_query": self.settings.search_query, "start": start, "max_results": size}
        response = http.get(self.settings.base_url, params)
        where = f"{self.settings.base_url} start={start}"
        try:
            feed = ET.fromstring(response.content)
        except ET.ParseError as error:
            raise ConnectorError(self.name, where, f"invalid Atom XML ({error})") from error
        if feed.tag != f"{ATOM}feed":
            raise ConnectorError(self.name, where, f"expected an Atom <feed>, got <{feed.tag}>")
        total_text = feed.findtext(f"{OPENSEARCH}totalResults")
        try:
            total = int(total_text or "")
        except ValueError as error:
            raise ConnectorError(self.name, where, "missing or not an integer", field="opensearch:totalResults") from error
        payload_id = RawPayload.digest(response.content)
        entries = feed.findall(f"{ATOM}entry")
        documents = [
            entry_document(e, self.settings.search_query, payload_id, f"{where} entry {i}")
            for i, e in enumerate(entries)
        ]
        next_start = start + len(entries)
        done = not entries or next_start >= total
        return Page(documents=documents, next_cursor=None if done else {"start": next_start})
