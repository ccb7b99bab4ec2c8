"""Documents about medicines (labels, abstracts, leaflets) and the raw payloads they came from.

Connectors return :class:`Document` objects; :mod:`drugslm_core.data.questions`
turns their sections into question/answer records. Raw HTTP payloads are kept
(:class:`RawPayload`) so every record can be traced to the bytes it came from.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Literal

from pydantic import BaseModel, Field


class DocumentSection(BaseModel):
    name: str
    """Canonical section key (``indications``, ``dosage``, …) or a slug of an unknown heading."""
    heading: str
    """The heading as it appeared in the source."""
    text: str


class Document(BaseModel):
    id: str
    title: str
    """The drug or topic the document is about (becomes the records' focus)."""
    source: str
    """Connector or file: ``openfda``, ``pubmed``, ``arxiv``, ``anvisa``, or a PDF path."""
    locator: str
    """Where in the source: ``skip=100 result 3``, ``PMID 123``, ``page 1 item 2``."""
    kind: Literal["label", "abstract", "preprint", "registry", "leaflet"]
    language: Literal["en", "pt"] = "en"
    url: str | None = None
    sections: list[DocumentSection] = Field(default_factory=list)
    metadata: dict[str, str] = Field(default_factory=dict)
    payload_ids: list[str] = Field(default_factory=list)
    """Ids of the raw payloads this document was parsed from (lineage)."""


class DocumentBatch(BaseModel):
    documents: list[Document] = Field(default_factory=list)

    def __len__(self) -> int:
        return len(self.documents)

    def counts_by_source(self) -> dict[str, int]:
        return dict(Counter(d.source for d in self.documents))


class RawPayload(BaseModel):
    """One HTTP response body exactly as received."""

    id: str
    """sha256 of the body: the same bytes are stored once."""
    source: str
    url: str
    status: int
    content_type: str
    body: bytes

    @staticmethod
    def digest(body: bytes) -> str:
        return hashlib.sha256(body).hexdigest()


class RawPayloadBatch(BaseModel):
    payloads: list[RawPayload] = Field(default_factory=list)

    def __len__(self) -> int:
        return len(self.payloads)

    def total_bytes(self) -> int:
        return sum(len(p.body) for p in self.payloads)
