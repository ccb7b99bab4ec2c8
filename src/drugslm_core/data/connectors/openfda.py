"""openFDA drug labels (``/drug/label.json``), paged with ``skip``/``limit``.

Response shape (open.fda.gov/apis/drug/label/): ``{"meta": {"results": {"skip",
"limit", "total"}}, "results": [{"id", "set_id", "effective_time", "openfda":
{"brand_name": [...], "generic_name": [...]}, "indications_and_usage": ["..."], ...}]}``;
every label section is a list of strings. No match is HTTP 404 with
``{"error": {"code": "NOT_FOUND"}}``. ``skip`` cannot pass 25 000.
"""

from __future__ import annotations

import re
from typing import Any

from drugslm_core.config import OpenFDASettings
from drugslm_core.data.connectors.base import Connector, ConnectorError, Cursor, HttpFetcher, Page
from drugslm_core.data.documents import Document, DocumentSection
from drugslm_core.data.sections import canonical_section

MAX_SKIP = 25_000

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

_LEADING_HEADING = re.compile(r"^\s*(?:\d+(?:\.\d+)*\s+)?([A-Z][A-Z &/,\-]{3,80}?)(?=\s+[A-Z][a-z]|\s*$|\s*:)")


def _strip_echoed_heading(text: str, section: str) -> str:
    """Labels repeat the heading at the start of the text (``1 INDICATIONS AND USAGE Metformin is…``)."""
    match = _LEADING_HEADING.match(text)
    if match and canonical_section(match.group(1)) == section:
        return text[match.end():].lstrip(" :")
    return text


def label_document(result: dict[str, Any], locator: str, payload_id: str) -> Document:
    if not isinstance(result, dict):
        raise ConnectorError("openfda", locator, f"expected a label object, got {type(result).__name__}")
    label_id = result.get("set_id") or result.get("id")
    if not isinstance(label_id, str) or not label_id:
        raise ConnectorError("openfda", locator, "label has no id", field="set_id")
    names = result.get("openfda") or {}
    title = next(
        (values[0] for key in ("generic_name", "brand_name", "substance_name")
         if isinstance(values := names.get(key), list) and values and isinstance(values[0], str)),
        label_id,
    )
    texts: dict[str, list[str]] = {}
    headings: dict[str, list[str]] = {}
    for field, section in LABEL_FIELDS.items():
        value = result.get(field)
        if value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConnectorError("openfda", locator, "expected a list of strings", field=field)
        body = " ".join(_strip_echoed_heading(v.strip(), section) for v in value if v.strip())
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
            k: str(result[k]) for k in ("id", "set_id", "effective_time", "version") if isinstance(result.get(k), str)
        },
        payload_ids=[payload_id],
    )


class OpenFDAConnector(Connector):
    name = "openfda"

    def __init__(self, settings: OpenFDASettings):
        self.settings = settings

    def initial_cursor(self) -> Cursor:
        return {"skip": 0}

    def fetch_page(self, http: HttpFetcher, cursor: Cursor, want: int) -> Page:
        skip = int(cursor.get("skip", 0))
        limit = max(1, min(self.settings.page_size, want, MAX_SKIP - skip))
        params: dict[str, Any] = {"limit": limit, "skip": skip}
        if self.settings.search:
            params["search"] = self.settings.search
        if self.settings.api_key:
            params["api_key"] = self.settings.api_key
        url = self.settings.base_url.rstrip("/") + "/drug/label.json"
        body, payload_id = http.get_json(url, params, accept=(404,))
        where = f"{url} skip={skip}"
        if not isinstance(body, dict):
            raise ConnectorError(self.name, where, "expected a JSON object")
        if "error" in body:
            if (body.get("error") or {}).get("code") == "NOT_FOUND":
                return Page(documents=[], next_cursor=None)
            raise ConnectorError(self.name, where, f"API error {body['error']}", field="error")
        results = body.get("results")
        if not isinstance(results, list):
            raise ConnectorError(self.name, where, "missing or not a list", field="results")
        total = (((body.get("meta") or {}).get("results")) or {}).get("total")
        if not isinstance(total, int):
            raise ConnectorError(self.name, where, "missing or not an integer", field="meta.results.total")
        documents = [
            label_document(result, f"skip={skip} result {i}", payload_id) for i, result in enumerate(results)
        ]
        next_skip = skip + len(results)
        done = not results or next_skip >= total or next_skip >= MAX_SKIP
        return Page(documents=documents, next_cursor=None if done else {"skip": next_skip})
