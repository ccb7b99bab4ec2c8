"""Documents → question/answer records: one MedQuAD-style question per section (per chunk).

Question types follow MedQuAD and the bundled corpus: indication, dosage, side effects,
contraindications, interactions, storage, … A section with an unknown heading still
becomes a record (a generic question naming the heading), and a document with no
extractable text becomes one record without an answer, which the quality gate
quarantines: nothing a connector fetched disappears silently.
"""

from __future__ import annotations

from collections import Counter

from pydantic import BaseModel

from drugslm_core.config import ChunkingSettings
from drugslm_core.data.chunking import chunk_text
from drugslm_core.data.documents import Document
from drugslm_core.data.records import QARecord

QUESTION_TEMPLATES: dict[str, dict[str, str]] = {
    "en": {
        "indications": "What is {drug} used for?",
        "mechanism": "How does {drug} work?",
        "dosage": "What is the usual dose of {drug}?",
        "contraindications": "Who should not take {drug}?",
        "warnings": "What precautions should I know about before taking {drug}?",
        "adverse_reactions": "What are the side effects of {drug}?",
        "interactions": "Which medicines interact with {drug}?",
        "storage": "How should I store {drug}?",
        "overdose": "What should I do in case of an overdose of {drug}?",
        "pregnancy": "Can {drug} be used during pregnancy?",
        "missed_dose": "What should I do if I miss a dose of {drug}?",
        "composition": "What does {drug} contain?",
        "registration": "Who holds the registration of {drug}?",
        "overview": "What is {drug}?",
        "abstract": 'What does the study "{article_title}" report about {drug}?',
        "other": "What does the {drug} leaflet say about {heading}?",
    },
    "pt": {
        "indications": "Para que serve {drug}?",
        "mechanism": "Como {drug} funciona?",
        "dosage": "Como devo usar {drug}?",
        "contraindications": "Quando não devo usar {drug}?",
        "warnings": "O que devo saber antes de usar {drug}?",
        "adverse_reactions": "Quais os efeitos colaterais de {drug}?",
        "interactions": "Quais medicamentos interagem com {drug}?",
        "storage": "Como devo guardar {drug}?",
        "overdose": "O que fazer se alguém usar uma quantidade maior de {drug}?",
        "pregnancy": "{drug} pode ser usado na gravidez?",
        "missed_dose": "O que fazer se eu esquecer uma dose de {drug}?",
        "composition": "Qual a composição de {drug}?",
        "registration": "Qual é o registro de {drug} na ANVISA?",
        "overview": "O que é {drug}?",
        "abstract": 'O que o estudo "{article_title}" relata sobre {drug}?',
        "other": "O que a bula de {drug} diz sobre {heading}?",
    },
}
PART_SUFFIX = {"en": " (part {i} of {n})", "pt": " (parte {i} de {n})"}


class ConversionStats(BaseModel):
    documents: int = 0
    sections: int = 0
    records: int = 0
    documents_without_text: int = 0
    chunked_sections: int = 0
    chunks_added: int = 0
    """Records beyond one per section, created by chunking."""
    by_section: dict[str, int] = {}

    def add(self, other: ConversionStats) -> ConversionStats:
        by_section = Counter(self.by_section) + Counter(other.by_section)
        fields = {k: getattr(self, k) + getattr(other, k) for k in
                  ("documents", "sections", "records", "documents_without_text", "chunked_sections", "chunks_added")}
        return ConversionStats(**fields, by_section=dict(by_section))


def question_for(document: Document, section_name: str, heading: str) -> str:
    templates = QUESTION_TEMPLATES[document.language]
    template = templates.get(section_name, templates["other"])
    return template.format(
        drug=document.title, heading=heading.strip().rstrip("?:").lower() or section_name,
        article_title=document.metadata.get("article_title", document.title),
    )


def document_records(document: Document, chunking: ChunkingSettings) -> tuple[list[QARecord], ConversionStats]:
    """The records of one document and what happened on the way (sections, chunks)."""
    stats = ConversionStats(documents=1)
    if not document.sections:
        stats.documents_without_text = 1
        stats.records = 1
        record = QARecord(
            id=f"{document.id}:no-text", question=question_for(document, "overview", "overview"), answer=None,
            focus=document.title, source=document.source,
            locator=f"{document.locator} (document has no extractable text)", section="overview",
        )
        return [record], stats
    records = []
    seen: Counter[str] = Counter()
    for number, section in enumerate(document.sections, start=1):
        stats.sections += 1
        seen[section.name] += 1
        key = section.name if seen[section.name] == 1 else f"{section.name}#{seen[section.name]}"
        chunks = chunk_text(section.text, chunking.strategy, chunking.max_chars, chunking.overlap_chars) or [""]
        if len(chunks) > 1:
            stats.chunked_sections += 1
            stats.chunks_added += len(chunks) - 1
        question = question_for(document, section.name, section.heading)
        for i, chunk in enumerate(chunks, start=1):
            suffix = PART_SUFFIX[document.language].format(i=i, n=len(chunks)) if len(chunks) > 1 else ""
            records.append(
                QARecord(
                    id=f"{document.id}:{key}" + (f":{i}" if len(chunks) > 1 else ""),
                    question=question + suffix, answer=chunk, focus=document.title, source=document.source,
                    locator=f"{document.locator}, section {number} {section.heading!r}"
                    + (f", chunk {i}/{len(chunks)}" if len(chunks) > 1 else ""),
                    section=section.name,
                )
            )
    stats.records = len(records)
    stats.by_section = dict(Counter(r.section or "" for r in records))
    return records, stats


def documents_to_records(documents: list[Document], chunking: ChunkingSettings) -> tuple[list[QARecord], ConversionStats]:
    all_records: list[QARecord] = []
    total = ConversionStats()
    for document in documents:
        records, stats = document_records(document, chunking)
        all_records.extend(records)
        total = total.add(stats)
    return all_records, total
