"""openFDA drug labels (``/drug/label.json``), paged with the ``Link`` header, else ``skip``/``limit``.

Response shape (open.fda.gov/apis/drug/label/): ``{"meta": {"results": {"skip",
"limit", "total"}}, "results": [{"id", "set_id", "effective_time", "openfda":
{"brand_name": [...], "generic_name": [...]}, "indications_and_usage": ["..."], ...}]}``;
every label section is a list of strings. No match is HTTP 404 with
``{"error": {"code": "NOT_FOUND"}}``.

Limits (open.fda.gov/apis/paging/, /apis/query-parameters/): ``limit`` ≤ 1000 (above: HTTP
400, so ``page_size`` is validated), ``skip`` ≤ 25 000. Past that the API pages with
``search_after``: a first request WITHOUT ``skip`` answers with ``Link: <…&search_after=…>;
rel="next"``, which is followed (the cursor stores that URL, never the API key). When
neither can go further before ``meta.results.total``, the page says "fetched N of M" and
the source is not recorded as done.

Real labels often carry ``"openfda": {}`` (not every SPL is harmonised): the drug name then
comes from ``spl_product_data_elements`` (proprietary then non-proprietary name first) or
``title``; a label with no name at all is quarantined with that reason rather than asking
"What is 3162733b-… used for?". OTC labels repeat their headings in the text ("Uses Uses
temporarily relieves…"): the echoed headings are removed, the text after them is kept as is.
"""

from __future__ import annotations

import os
import re
from typing import Any

import httpx

from drugslm_core.config import OpenFDASettings
from drugslm_core.data.connectors.base import (
    Connector,
    ConnectorError,
    ConnectorResponse,
    Cursor,
    HttpFetcher,
    Page,
    parse_response,
)
from drugslm_core.data.documents import Document, DocumentSection
from drugslm_core.data.records import QARecord, QuarantinedRecord
from drugslm_core.data.sections import canonical_section

MAX_SKIP = 25_000
MAX_LIMIT = 1000

# label field -> canonical section (several fields may feed one section; they are joined in this order)
LABEL_FIELDS: dict[str, str] = {
    "indications_and_usage": "indications", "purpose": "indications",
    "mechanism_of_action": "mechanism",
    "dosage_and_administration": "dosage",
    "contraindications": "contraindications", "do_not_use": "contraindications",
    "boxed_warning": "warnings", "warnings_and_cautions": "warnings", "warnings": "warnings",
    "precautions": "warnings",
    "adverse_reactions": "adverse_reactions",
    "drug_interactions": "interactions",
    "storage_and_handling": "storage",
    "overdosage": "overdose",
    "pregnancy": "pregnancy",
}

class OpenFDANames(ConnectorResponse):
    generic_name: list[str] = []
    brand_name: list[str] = []
    substance_name: list[str] = []


class LabelSections(ConnectorResponse):
    """The label fields read into sections (:data:`LABEL_FIELDS`): each a list of strings."""

    indications_and_usage: list[str] | None = None
    purpose: list[str] | None = None
    mechanism_of_action: list[str] | None = None
    dosage_and_administration: list[str] | None = None
    contraindications: list[str] | None = None
    do_not_use: list[str] | None = None
    boxed_warning: list[str] | None = None
    warnings_and_cautions: list[str] | None = None
    warnings: list[str] | None = None
    precautions: list[str] | None = None
    adverse_reactions: list[str] | None = None
    drug_interactions: list[str] | None = None
    storage_and_handling: list[str] | None = None
    overdosage: list[str] | None = None
    pregnancy: list[str] | None = None


class OpenFDALabel(LabelSections):
    id: str | None = None
    set_id: str | None = None
    effective_time: str | None = None
    version: str | None = None
    openfda: OpenFDANames | None = None
    spl_product_data_elements: list[str] = []
    title: list[str] | str | None = None

    @property
    def label_id(self) -> str | None:
        return self.set_id or self.id or None


class ErrorBody(ConnectorResponse):
    code: str | None = None


class ResultsMeta(ConnectorResponse):
    total: int


class Meta(ConnectorResponse):
    results: ResultsMeta


class LabelPage(ConnectorResponse):
    """``/drug/label.json``: the labels are read one by one (:class:`OpenFDALabel`), so an error names its result."""

    results: list[Any]
    meta: Meta


class LabelError(ConnectorResponse):
    """What openFDA answers instead of a page (``{"error": {"code": "NOT_FOUND", …}}`` with HTTP 404)."""

    error: ErrorBody


assert set(LabelSections.model_fields) == set(LABEL_FIELDS)  # one typed field per section field


_LEADING_HEADING = re.compile(r"^\s*(?:\d+(?:\.\d+)*\s+)?([A-Z][A-Z &/,\-]{3,80}?)(?=\s+[A-Z][a-z]|\s*$|\s*:)")


def _strip_echoed_heading(text: str, section: str) -> str:
    """Labels repeat the heading at the start of the text (``1 INDICATIONS AND USAGE Metformin is…``)."""
    match = _LEADING_HEADING.match(text)
    if match and canonical_section(match.group(1)) == section:
        return text[match.end():].lstrip(" :")
    return text


# Headings OTC (Drug Facts) and Rx labels write at the start of a field's text, sometimes twice
# ("Uses Uses temporarily relieves…"). Only headings whose removal cannot change the meaning are
# listed: "Do not use …" or a bare "Use …" are sentences, not headings, and stay.
OTC_HEADINGS: dict[str, tuple[str, ...]] = {
    "indications_and_usage": ("indications and usage", "indications & usage", "uses"),
    "purpose": ("purposes", "purpose"),
    "dosage_and_administration": ("dosage and administration", "directions"),
    "warnings": ("warnings",),
    "warnings_and_cautions": ("warnings and precautions", "warnings and cautions"),
    "precautions": ("precautions",),
    "contraindications": ("contraindications",),
    "adverse_reactions": ("adverse reactions",),
    "drug_interactions": ("drug interactions",),
    "storage_and_handling": ("storage and handling",),
    "overdosage": ("overdosage",),
    "mechanism_of_action": ("mechanism of action",),
}
_REPEATED_HEADING = {
    field: re.compile(
        # not when the word goes on as a phrase ("Uses of …", "Directions for use", "Warnings and …")
        r"^\s*(?:\d+(?:\.\d+)*\s+)?(?:(?:" + "|".join(re.escape(h) for h in headings) + r")\s*[:.]?\s+)+"
        r"(?!(?:of|for|in|with|and|to)\b)",
        re.IGNORECASE,
    )
    for field, headings in OTC_HEADINGS.items()
}


def _strip_repeated_headings(text: str, field: str) -> str:
    """``Uses Uses temporarily relieves…`` → ``temporarily relieves…`` (the heading, however often echoed)."""
    pattern = _REPEATED_HEADING.get(field)
    if pattern is None:
        return text
    match = pattern.match(text)
    return text[match.end():] if match and text[match.end():].strip() else text


def _name_from_product_elements(value: list[str]) -> str | None:
    """The product name at the start of ``spl_product_data_elements``.

    The field lists, space-separated, the proprietary name, the non-proprietary name, then
    ingredients and imprint codes (``Ibuprofen Ibuprofen IBUPROFEN IBUPROFEN SODIUM…``,
    ``Advil Ibuprofen IBUPROFEN…``). When the first k words repeat right after, they are the name;
    otherwise the words up to the first repeated one (brand and generic name) are.
    """
    if not value:
        return None
    words = value[0].split()
    if not words:
        return None
    lowered = [w.lower() for w in words]
    for k in range(1, min(6, len(words) // 2) + 1):
        if lowered[:k] == lowered[k:2 * k]:
            return " ".join(words[:k])
    seen: set[str] = set()
    name: list[str] = []
    for word, low in zip(words, lowered):
        if low in seen or any(c.isdigit() for c in word) or len(name) == 6:
            break
        seen.add(low)
        name.append(word)
    return " ".join(name) or None


def label_name(result: OpenFDALabel | dict[str, Any]) -> tuple[str, str] | None:
    """The drug name and where it came from: ``openfda`` names, ``spl_product_data_elements``, ``title``."""
    label = result if isinstance(result, OpenFDALabel) else OpenFDALabel.model_validate(result)  # a raw label
    names = label.openfda or OpenFDANames()
    for key in ("generic_name", "brand_name", "substance_name"):
        values: list[str] = getattr(names, key)
        if values and values[0].strip():
            return values[0].strip(), f"openfda.{key}"
    product = _name_from_product_elements(label.spl_product_data_elements)
    if product:
        return product, "spl_product_data_elements"
    titles = [label.title] if isinstance(label.title, str) else label.title or []
    if titles and titles[0].strip():
        return " ".join(titles[0].split())[:120], "title"
    return None


def unnamed_label_quarantine(label_id: str, locator: str) -> QuarantinedRecord:
    return QuarantinedRecord(
        record=QARecord(id=f"openfda:{label_id}", question=None, answer=None, focus=label_id, source="openfda",
                        locator=locator),
        reasons=["unnamed_label: no drug name in openfda.{generic,brand,substance}_name, "
                 "spl_product_data_elements or title"],
    )


def label_document(label: OpenFDALabel, locator: str, payload_id: str) -> Document:
    label_id = label.label_id
    if not label_id:
        raise ConnectorError("openfda", locator, "label has no id", field="set_id")
    named = label_name(label)
    if named is None:
        raise ConnectorError("openfda", locator, "label has no drug name", field="openfda")
    title, name_source = named
    texts: dict[str, list[str]] = {}
    headings: dict[str, list[str]] = {}
    for field, section in LABEL_FIELDS.items():
        value: list[str] | None = getattr(label, field)
        if value is None:
            continue
        body = " ".join(
            _strip_repeated_headings(_strip_echoed_heading(v.strip(), section), field) for v in value if v.strip()
        )
        if body:
            texts.setdefault(section, []).append(body)
            headings.setdefault(section, []).append(field)
    return Document(
        id=f"openfda:{label_id}", title=title.strip(), source="openfda", locator=locator, kind="label",
        url=f"https://api.fda.gov/drug/label.json?search=set_id:{label_id}",
        sections=[
            DocumentSection(name=section, heading=" + ".join(headings[section]), text="\n\n".join(parts))
            for section, parts in texts.items()
        ],
        metadata={
            k: value for k, value in label.model_dump(include={"id", "set_id", "effective_time", "version"}).items()
            if value is not None
        } | {"name_source": name_source},
        payload_ids=[payload_id],
    )


class OpenFDAConnector(Connector):
    name = "openfda"

    def __init__(self, settings: OpenFDASettings):
        if not 1 <= settings.page_size <= MAX_LIMIT:  # settings validate this too; built by hand, say it here
            raise ValueError(f"data.connectors.openfda.page_size={settings.page_size}: openFDA allows 1..{MAX_LIMIT}")
        self.settings = settings
        self.api_key = os.environ.get(settings.api_key_env) or None

    def initial_cursor(self) -> Cursor:
        return {"skip": 0}

    def fetch_page(self, http: HttpFetcher, cursor: Cursor, want: int) -> Page:
        url = self.settings.base_url.rstrip("/") + "/drug/label.json"
        position = int(cursor["fetched"]) if "fetched" in cursor else int(cursor.get("skip", 0))
        limit = max(1, min(self.settings.page_size, want))
        params: dict[str, Any] = {}
        if "next" in cursor:  # a search_after link from the last response
            request_url = str(httpx.URL(cursor["next"]).copy_set_param("limit", limit))
            at = f"after={position}"
        else:
            skip = int(cursor.get("skip", 0))
            if skip >= MAX_SKIP:
                return Page([], cursor, stopped=self._limit_message(position, cursor.get("total")))
            limit = min(limit, MAX_SKIP - skip)
            params = {"limit": limit}
            if skip:  # never on the first request: openFDA's search_after Link comes only without skip
                params["skip"] = skip
            if self.settings.search:
                params["search"] = self.settings.search
            request_url, at = url, f"skip={skip}"
        where = f"{url} {at}"
        if self.api_key:
            params["api_key"] = self.api_key
        if "next" in cursor:  # httpx replaces a URL's query with ``params``: set them on the link instead
            link = httpx.URL(request_url)
            for key, value in params.items():
                link = link.copy_set_param(key, value)
            request_url, params = str(link), {}
        response = http.get(request_url, params or None, accept=(404,))
        body, payload_id = http.json_of(response)
        # Which shape came back is told by the "error" key alone (no discriminator pydantic could
        # switch on), so that one look is by hand; each shape is then read by its model.
        if isinstance(body, dict) and "error" in body:
            error = parse_response(LabelError, body, self.name, where).error
            if error.code == "NOT_FOUND":
                return Page(documents=[], next_cursor=None, total=0)
            raise ConnectorError(self.name, where, f"API error {body['error']}", field="error")
        reply = parse_response(LabelPage, body, self.name, where)
        results, total = reply.results, reply.meta.results.total
        documents, quarantine = [], []
        for i, result in enumerate(results):
            locator = f"{at} result {i}"
            label = parse_response(OpenFDALabel, result, self.name, locator)
            if label.label_id and label_name(label) is None:
                quarantine.append(unnamed_label_quarantine(label.label_id, locator))
                continue
            documents.append(label_document(label, locator, payload_id))
        reached = position + len(results)
        if not results or reached >= total:
            return Page(documents, None, total=total, quarantine=quarantine)
        next_link = response.links.get("next", {}).get("url")  # a str; ``link`` above is an httpx.URL
        if next_link and ("search_after" in next_link or int(httpx.URL(next_link).params.get("skip", "0") or 0) < MAX_SKIP):
            following = httpx.URL(next_link)
            following = following.copy_remove_param("api_key") if "api_key" in following.params else following
            return Page(documents, {"next": str(following), "fetched": reached}, total=total, quarantine=quarantine)
        if "next" in cursor:  # the Link trail ended before the total: the next run asks this link again
            stopped = f"fetched {reached} of {total} labels: the search_after Link trail ended before the total"
            return Page(documents, cursor, total=total, stopped=stopped, quarantine=quarantine)
        if reached >= MAX_SKIP:  # the skip wall, and no Link to go past it
            return Page(documents, {"skip": MAX_SKIP, "fetched": reached, "total": total}, total=total,
                        stopped=self._limit_message(reached, total), quarantine=quarantine)
        return Page(documents, {"skip": reached}, total=total, quarantine=quarantine)

    @staticmethod
    def _limit_message(reached: int, total: object) -> str:
        return (
            f"fetched {reached} of {total} labels: openFDA's skip stops at {MAX_SKIP:,} and no search_after "
            "Link header came to go further; narrow data.connectors.openfda.search (the source is not marked done)"
        )

