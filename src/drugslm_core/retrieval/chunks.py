"""Retrieval chunks from accepted records: each with a stable id and a content hash.

The chunk id is ``source:drug-slug:section:number`` (number counts the chunks of that leaflet
section from 0), so the same corpus always yields the same ids and a citation names the leaflet
section it came from. Cutting reuses the data layer's chunker (``data.chunking``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from pydantic import BaseModel

from drugslm_core.data.chunking import chunk_text
from drugslm_core.data.feedback_records import Citation
from drugslm_core.data.records import QARecord
from drugslm_core.data.sample_corpus import slug


class Chunk(BaseModel):
    chunk_id: str
    source: str
    drug: str
    section: str
    number: int
    text: str
    content_hash: str
    """sha256 of the text: a changed leaflet gives a changed hash under the same id."""

    def citation(self) -> Citation:
        return Citation(chunk_id=self.chunk_id, drug=self.drug, section=self.section, source=self.source)


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def chunk_id(source: str, drug: str, section: str, number: int) -> str:
    return f"{source}:{slug(drug)}:{section}:{number}"


def build_chunks(
    records: Iterable[QARecord], strategy: str = "sentence", max_chars: int = 600, overlap_chars: int = 0
) -> list[Chunk]:
    """The chunks of every record's answer (the leaflet text), grouped by (source, drug, section).

    Several records can carry the same section text (two questions answered by one leaflet
    section, or a section cut into several records by cleaning): identical texts are indexed once,
    and distinct texts of one section continue its chunk numbering, so ids stay unique.
    Records without an answer are skipped: the quality gate has already quarantined those with a reason.
    """
    chunks: list[Chunk] = []
    numbers: dict[tuple[str, str, str], int] = {}
    seen: set[tuple[str, str, str, str]] = set()
    for record in records:
        text = " ".join((record.answer or "").split())
        if not text:
            continue
        drug = record.focus.strip()
        section = record.section or "other"
        key = (record.source, drug.lower(), section)
        for piece in chunk_text(text, strategy, max_chars, overlap_chars):
            digest = content_hash(piece)
            if (*key, digest) in seen:
                continue
            seen.add((*key, digest))
            number = numbers.get(key, 0)
            numbers[key] = number + 1
            chunks.append(Chunk(
                chunk_id=chunk_id(record.source, drug, section, number), source=record.source, drug=drug,
                section=section, number=number, text=piece, content_hash=digest,
            ))
    return chunks
