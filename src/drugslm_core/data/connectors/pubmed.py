"""PubMed abstracts through NCBI E-utilities: ``esearch`` (ids, JSON) then ``efetch`` (XML).

Shapes (www.ncbi.nlm.nih.gov/books/NBK25499/): ``esearch.fcgi?db=pubmed&term=…&retstart=…
&retmax=…&retmode=json`` → ``{"esearchresult": {"count": "123", "retstart": "0", "retmax":
"20", "idlist": ["…"]}}``; ``efetch.fcgi?db=pubmed&id=1,2&rettype=abstract&retmode=xml`` →
``<PubmedArticleSet><PubmedArticle><MedlineCitation><PMID>…</PMID><Article><ArticleTitle>…
</ArticleTitle><Abstract><AbstractText Label="BACKGROUND">…`` (structured abstracts have
several labelled parts). Without an API key NCBI allows 3 requests/s, 10 with one; it asks
for ``tool`` and ``email`` on every request.

What real result sets hold, and what this connector does with it:

- esearch serves only the first 9,999 ids of a query (``retstart + retmax`` ≤ 9,999). A query
  over the cap is split into publication-date windows (``mindate``/``maxdate``,
  ``datetype=pdat``), halved until each fits (``split_by_date``, on by default); the pending
  windows live in the cursor. Where a window cannot be split further (one day) or splitting
  is off, the connector stops at the cap with "fetched N of M" (the source is not marked done).
- ``sort=pub_date`` keeps the order stable between runs: newer articles come first, so
  ones published between two runs shift offsets forward (re-fetched, then de-duplicated),
  never past an unread id.
- ``<PubmedBookArticle>`` (StatPearls chapters, NCBI Bookshelf) sit beside
  ``<PubmedArticle>`` in the efetch set: ``BookDocument/PMID``, ``ArticleTitle``,
  ``Abstract``, ``Book/BookTitle``, ``Book/PubDate``; they become documents too.
- ``PubDate`` holds ``<Year>`` or, for seasonal/ranged issues, ``<MedlineDate>1998 Dec-1999
  Jan</MedlineDate>``: the year is the first four-digit year in it.
- An id esearch listed but efetch did not return (withdrawn, not yet indexed) is quarantined
  with that reason rather than dropped unseen.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import xml.etree.ElementTree as ET
from typing import Any

from pydantic import Field

from drugslm_core.config import HttpSettings, PubMedSettings
from drugslm_core.data.connectors.base import (
    Connector,
    ConnectorError,
    ConnectorResponse,
    Cursor,
    HttpFetcher,
    Page,
    parse_response,
)
from drugslm_core.data.documents import Document, DocumentSection, RawPayload
from drugslm_core.data.records import QARecord, QuarantinedRecord

logger = logging.getLogger(__name__)
ESEARCH_MAX = 9999
EARLIEST = dt.date(1800, 1, 1)
"""esearch serves ids up to this offset only (retstart + retmax ≤ 9,999)."""
_YEAR = re.compile(r"\b(1[89]\d\d|2\d\d\d)\b")


class ESearchStatus(ConnectorResponse):
    error: Any = Field(None, alias="ERROR")


class ESearchStatusReply(ConnectorResponse):
    """Read first: an E-utilities error comes without ``idlist``/``count``, and is reported as such."""

    esearchresult: ESearchStatus


class ESearchResult(ConnectorResponse):
    idlist: list[str]
    count: int = Field(strict=False)  # E-utilities sends it as a string ("123")


class ESearchReply(ConnectorResponse):
    esearchresult: ESearchResult


def _all_text(element: ET.Element | None) -> str:
    return " ".join("".join(element.itertext()).split()) if element is not None else ""


def publication_year(pub_date: ET.Element | None) -> str:
    """``<Year>`` or the first year in ``<MedlineDate>`` (``1998 Dec-1999 Jan`` → ``1998``)."""
    if pub_date is None:
        return ""
    year = (pub_date.findtext("Year") or "").strip()
    if year:
        return year
    match = _YEAR.search(pub_date.findtext("MedlineDate") or "")
    return match.group(1) if match else ""


def _abstract_sections(abstract: ET.Element | None) -> list[DocumentSection]:
    parts = []
    for node in abstract.findall("AbstractText") if abstract is not None else []:
        text = _all_text(node)
        if text:
            label = node.get("Label")
            parts.append(f"{label.capitalize()}: {text}" if label else text)
    return [DocumentSection(name="abstract", heading="Abstract", text="\n\n".join(parts))] if parts else []


def article_document(article: ET.Element, topic: str, payload_id: str, where: str) -> Document:
    """A ``<PubmedArticle>`` or a ``<PubmedBookArticle>`` (a book chapter: StatPearls…)."""
    book = article.tag == "PubmedBookArticle"
    pmid = article.findtext("BookDocument/PMID" if book else "MedlineCitation/PMID") or article.findtext(".//PMID")
    if not pmid:
        raise ConnectorError(
            "pubmed", where, "article has no PMID", field="BookDocument/PMID" if book else "MedlineCitation/PMID"
        )
    if book:
        title = _all_text(article.find("BookDocument/ArticleTitle")) or _all_text(article.find("BookDocument/Book/BookTitle"))
        sections = _abstract_sections(article.find("BookDocument/Abstract"))
        journal = _all_text(article.find("BookDocument/Book/BookTitle"))
        year = publication_year(article.find("BookDocument/Book/PubDate")) or publication_year(
            article.find("BookDocument/ContributionDate")
        )
    else:
        title = _all_text(article.find(".//Article/ArticleTitle"))
        sections = _abstract_sections(article.find(".//Article/Abstract"))
        journal = article.findtext(".//Article/Journal/Title") or ""
        year = publication_year(article.find(".//Article/Journal/JournalIssue/PubDate"))
    return Document(
        id=f"pubmed:{pmid.strip()}", title=topic, source="pubmed", locator=f"PMID {pmid.strip()}",
        kind="abstract", url=f"https://pubmed.ncbi.nlm.nih.gov/{pmid.strip()}/", sections=sections,
        metadata={"article_title": title, "journal": journal, "year": year, "pmid": pmid.strip(),
                  "publication_type": "book" if book else "article"},
        payload_ids=[payload_id],
    )


def _parse_date(value: str | None, end: bool) -> dt.date:
    """``YYYY``, ``YYYY/MM`` or ``YYYY/MM/DD`` as the first (or, with ``end``, the last) day it covers."""
    if not value:
        return dt.date.today() if end else EARLIEST
    parts = [int(p) for p in re.split(r"[/-]", value.strip())]
    year = parts[0]  # re.split gives at least one part
    month = parts[1] if len(parts) > 1 else None
    day = parts[2] if len(parts) > 2 else None
    if month is None:
        return dt.date(year, 12, 31) if end else dt.date(year, 1, 1)
    if day is None:
        if not end:
            return dt.date(year, month, 1)
        following = dt.date(year + (month == 12), month % 12 + 1, 1)
        return following - dt.timedelta(days=1)
    return dt.date(year, month, day)


def _ymd(day: dt.date) -> str:
    return day.strftime("%Y/%m/%d")


class PubMedConnector(Connector):
    name = "pubmed"

    def __init__(self, settings: PubMedSettings):
        if not settings.term.strip():
            raise ValueError("data.connectors.pubmed.term is empty: say what to search for")
        self.settings = settings
        self.api_key = os.environ.get(settings.api_key_env) or None
        if not settings.email:
            logger.warning("pubmed: no contact email configured (NCBI asks for one): set data.connectors.pubmed.email")

    def requests_per_second(self, http: HttpSettings) -> float:
        return self.settings.requests_per_second_with_key if self.api_key else http.requests_per_second

    def _params(self, **extra: Any) -> dict[str, Any]:
        params: dict[str, Any] = {"db": "pubmed", "tool": self.settings.tool, **extra}
        if self.settings.email:
            params["email"] = self.settings.email
        if self.api_key:
            params["api_key"] = self.api_key
        return params

    def initial_cursor(self) -> Cursor:
        return {"retstart": 0}

    def _limit_message(self, reached: int, count: object) -> str:
        return (
            f"fetched {reached} of {count} PubMed ids: esearch serves only the first {ESEARCH_MAX:,} of a query; "
            "narrow data.connectors.pubmed.term, or set mindate/maxdate windows with split_by_date on "
            "(the source is not marked done)"
        )

    def fetch_page(self, http: HttpFetcher, cursor: Cursor, want: int) -> Page:
        base = self.settings.base_url.rstrip("/")
        retstart = int(cursor.get("retstart", 0))
        windows: list[list[str]] = cursor.get("windows") or []
        if retstart >= ESEARCH_MAX:  # asking would only get an error back
            return Page([], cursor, stopped=self._limit_message(retstart, cursor.get("count", "?")))
        retmax = max(1, min(self.settings.page_size, want, ESEARCH_MAX - retstart))
        search_url = f"{base}/esearch.fcgi"
        query: dict[str, Any] = {
            "term": self.settings.term, "retstart": retstart, "retmax": retmax, "retmode": "json", "sort": "pub_date",
        }
        if windows:
            query |= {"datetype": "pdat", "mindate": windows[0][0], "maxdate": windows[0][1]}
        elif self.settings.mindate or self.settings.maxdate:
            query |= {"datetype": "pdat", "mindate": self.settings.mindate or "1800", "maxdate": self.settings.maxdate or "3000"}
        body, _ = http.get_json(search_url, self._params(**query))
        where = f"{search_url} retstart={retstart}" + (f" window {windows[0][0]}-{windows[0][1]}" if windows else "")
        status = parse_response(ESearchStatusReply, body, self.name, where).esearchresult
        if "error" in status.model_fields_set:  # present, even as null: the query failed
            raise ConnectorError(self.name, where, f"E-utilities error {status.error!r}", field="esearchresult.ERROR")
        result = parse_response(ESearchReply, body, self.name, where).esearchresult
        ids, count = result.idlist, result.count
        total = int(cursor.get("total", count))
        if count > ESEARCH_MAX and retstart == 0 and self.settings.split_by_date:
            lo = _parse_date(windows[0][0] if windows else self.settings.mindate, end=False)
            hi = _parse_date(windows[0][1] if windows else self.settings.maxdate, end=True)
            if hi > lo:  # halve the window; its ids are asked for again per half
                mid = lo + (hi - lo) // 2
                halves = [[_ymd(lo), _ymd(mid)], [_ymd(mid + dt.timedelta(days=1)), _ymd(hi)]]
                return Page([], {"retstart": 0, "windows": halves + windows[1:], "total": total}, total=total)
        documents: list[Document] = []
        quarantine: list[QuarantinedRecord] = []
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
                for i, article in enumerate(a for a in root if a.tag in ("PubmedArticle", "PubmedBookArticle"))
            ]
            returned = {d.metadata["pmid"] for d in documents}
            quarantine = [
                QuarantinedRecord(
                    record=QARecord(id=f"pubmed:{pmid}", question=None, answer=None, focus=self.settings.term,
                                    source=self.name, locator=f"PMID {pmid} ({fetch_where})"),
                    reasons=["missing_from_efetch: esearch listed this PMID, efetch returned no record for it"],
                )
                for pmid in ids if pmid not in returned
            ]
        next_start = retstart + len(ids)
        rest = {"windows": windows, "total": total} if windows else {}
        if not ids or next_start >= count:
            if len(windows) > 1:  # this window is done: on to the next one
                return Page(documents, {"retstart": 0, "windows": windows[1:], "total": total}, total=total,
                            quarantine=quarantine)
            return Page(documents, None, total=total, quarantine=quarantine)
        if next_start >= ESEARCH_MAX:
            return Page(documents, {"retstart": next_start, "count": count} | rest, total=total,
                        stopped=self._limit_message(next_start, count), quarantine=quarantine)
        return Page(documents, {"retstart": next_start} | rest, total=total, quarantine=quarantine)
