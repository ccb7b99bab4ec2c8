"""PubMed abstracts through NCBI E-utilities: ``esearch`` (ids, JSON) then ``efetch`` (XML).

Shapes (www.ncbi.nlm.nih.gov/books/NBK25499/): ``esearch.fcgi?db=pubmed&term=…&retstart=…
&retmax=…&retmode=json`` → ``{"esearchresult": {"count": "123", "retstart": "0", "retmax":
"20", "idlist": ["…"]}}``; ``efetch.fcgi?db=pubmed&id=1,2&rettype=abstract&retmode=xml`` →
``<PubmedArticleSet><PubmedArticle><MedlineCitation><PMID>…</PMID><Article><ArticleTitle>…
</ArticleTitle><Abstract><AbstractText Label="BACKGROUND">…`` (structured abstracts have
several labelled parts). Without an API key NCBI allows 3 requests/s.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from drugslm_core.config import PubMedSettings
from drugslm_core.data.connectors.base import Connector, ConnectorError, Cursor, HttpFetcher, Page
from drugslm_core.data.documents import Document, DocumentSection, RawPayload


def _all_text(element: ET.Element | None) -> str:
    return " ".join("".join(element.itertext()).split()) if element is not None else ""


def article_document(article: ET.Element, topic: str, payload_id: str, where: str) -> Document:
    pmid = article.findtext("MedlineCitation/PMID") or article.findtext(".//PMID")
    if not pmid:
        raise ConnectorError("pubmed", where, "article has no PMID", field="MedlineCitation/PMID")
    title = _all_text(article.find(".//Article/ArticleTitle"))
    parts = []
    for node in article.findall(".//Article/Abstract/AbstractText"):
        text = _all_text(node)
        if text:
            label = node.get("Label")
            parts.append(f"{label.capitalize()}: {text}" if label else text)
    sections = [DocumentSection(name="abstract", heading="Abstract", text="\n\n".join(parts))] if parts else []
    journal = article.findtext(".//Article/Journal/Title") or ""
    year = article.findtext(".//Article/Journal/JournalIssue/PubDate/Year") or ""
    return Document(
        id=f"pubmed:{pmid.strip()}", title=topic, source="pubmed", locator=f"PMID {pmid.strip()}",
        kind="abstract", url=f"https://pubmed.ncbi.nlm.nih.gov/{pmid.strip()}/", sections=sections,
        metadata={"article_title": title, "journal": journal, "year": year, "pmid": pmid.strip()},
        payload_ids=[payload_id],
    )


class PubMedConnector(Connector):
    name = "pubmed"

    def __init__(self, settings: PubMedSettings):
        if not settings.term.strip():
            raise ValueError("data.connectors.pubmed.term is empty: say what to search for")
        self.settings = settings

    def _params(self, **extra: Any) -> dict[str, Any]:
        params: dict[str, Any] = {"db": "pubmed", "tool": "drugslm", **extra}
        if self.settings.api_key:
            params["api_key"] = self.settings.api_key
        return params

    def initial_cursor(self) -> Cursor:
        return {"retstart": 0}

    def fetch_page(self, http: HttpFetcher, cursor: Cursor, want: int) -> Page:
        base = self.settings.base_url.rstrip("/")
        retstart = int(cursor.get("retstart", 0))
        retmax = max(1, min(self.settings.page_size, want))
        search_url = f"{base}/esearch.fcgi"
        body, _ = http.get_json(
            search_url, self._params(term=self.settings.term, retstart=retstart, retmax=retmax, retmode="json")
        )
        where = f"{search_url} retstart={retstart}"
        result = body.get("esearchresult") if isinstance(body, dict) else None
        if not isinstance(result, dict):
            raise ConnectorError(self.name, where, "missing or not an object", field="esearchresult")
        if "ERROR" in result:
            raise ConnectorError(self.name, where, f"E-utilities error {result['ERROR']!r}", field="esearchresult.ERROR")
        ids = result.get("idlist")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ConnectorError(self.name, where, "missing or not a list of strings", field="esearchresult.idlist")
        try:
            count = int(result.get("count", ""))
        except ValueError as error:
            raise ConnectorError(self.name, where, "not an integer", field="esearchresult.count") from error
        documents: list[Document] = []
        if ids:
            fetch_url = f"{base}/efetch.fcgi"
            response = http.get(fetch_url, self._params(id=",".join(ids), rettype="abstract", retmode="xml"))
            fetch_where = f"{fetch_url} ids {ids[0]}…{ids[-1]}"
            try:
                root = ET.fromstring(response.content)
            except ET.ParseError as error:
                raise ConnectorError(self.name, fetch_where, f"invalid XML ({error})") from error
            if root.tag != "PubmedArticleSet":
                raise ConnectorError(self.name, fetch_where, f"expected <PubmedArticleSet>, got <{root.tag}>")
            payload_id = RawPayload.digest(response.content)
            documents = [
                article_document(article, self.settings.term, payload_id, f"{fetch_where} article {i}")
                for i, article in enumerate(root.findall("PubmedArticle"))
            ]
        next_start = retstart + len(ids)
        done = not ids or next_start >= count
        return Page(documents=documents, next_cursor=None if done else {"retstart": next_start})
