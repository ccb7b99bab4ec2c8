"""The clean step: documents → records, then normalise, strip HTML and boilerplate, scrub PII, dedup.

Accounting, checked on every call: ``records in`` (the ingested records plus the records
made from documents, chunks included) = ``records out`` + ``duplicates``. A duplicate
is not dropped: it goes to the quarantine with ``duplicate_of:<id>``. A record that
cleaning empties is kept (the quality gate quarantines it as blank).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Sequence

from pydantic import BaseModel, Field
from tqdm.auto import tqdm

from drugslm_core.config import CleaningSettings
from drugslm_core.data.cleaning import (
    compile_patterns,
    looks_like_html,
    neutralise_control_tokens,
    normalize_text,
    remove_boilerplate,
    strip_html,
)
from drugslm_core.data.dedup import find_duplicates
from drugslm_core.data.documents import DocumentBatch
from drugslm_core.data.pii import scrub_pii
from drugslm_core.data.questions import ConversionStats, documents_to_records
from drugslm_core.data.records import QARecord, Quarantine, QuarantinedRecord, RecordBatch

logger = logging.getLogger(__name__)


class CleaningStats(BaseModel):
    records_in: int = 0
    """Ingested records plus records made from documents."""
    from_documents: ConversionStats = Field(default_factory=ConversionStats)
    records_out: int = 0
    duplicates_exact: int = 0
    duplicates_near: int = 0
    normalized: int = 0
    """Records whose text changed under unicode/whitespace normalisation."""
    html_stripped: int = 0
    boilerplate_lines: int = 0
    pii: dict[str, int] = Field(default_factory=dict)
    emptied: int = 0
    """Records with a non-blank answer before cleaning and a blank one after (the gate quarantines them)."""
    control_tokens: int = 0
    """Chat-template control strings (``<|im_end|>`` …) neutralised (``< |im_end| >``)."""
    rejected_by_reader: int = 0
    """Records a reader could not use (ragged/unparsable rows, wrong types): passed on for the gate to quarantine."""

    @property
    def duplicates(self) -> int:
        return self.duplicates_exact + self.duplicates_near


class CleaningResult(BaseModel):
    records: RecordBatch
    duplicates: Quarantine
    stats: CleaningStats


def clean_text(
    text: str | None, settings: CleaningSettings, patterns: Sequence[re.Pattern[str]], counters: Counter[str]
) -> str | None:
    """One field through every cleaning stage; ``counters`` gets what each stage did."""
    if text is None:
        return None
    value = text
    if settings.strip_html and looks_like_html(value):
        stripped = strip_html(value)
        if stripped != value:
            counters["html"] += 1
            value = stripped
    normalized = normalize_text(value, settings.unicode_form)
    if normalized != value:
        counters["normalized"] += 1
    value, removed = remove_boilerplate(normalized, patterns)
    counters["boilerplate_lines"] += removed
    if removed:
        value = normalize_text(value, settings.unicode_form)
    value, neutralised = neutralise_control_tokens(value)
    counters["control_tokens"] += neutralised
    return scrub_text(value, settings, counters)


def scrub_text(
    text: str | None, settings: CleaningSettings, counters: Counter[str], numbering: dict[str, str] | None = None
) -> str | None:
    """PII only (ids, file paths, locators, unparsed rows): no other change."""
    if text is None or not settings.pii.enabled:
        return text
    value, found = scrub_pii(text, settings.pii.kinds, settings.pii.allow, numbering)
    for kind, count in found.items():
        counters[f"pii:{kind}"] += count
    return value


def clean_record(
    record: QARecord, settings: CleaningSettings, patterns: Sequence[re.Pattern[str]], totals: Counter[str],
    numbering: dict[str, str] | None = None,
) -> QARecord:
    """Question and answer through every stage; every other text field (id, focus, section, source,
    locator, raw row) scrubbed of PII, so no artifact after ``clean`` holds personal data. Ids and
    source paths get numbered placeholders (``[EMAIL#1]``) so distinct ones stay distinct."""
    numbering = {} if numbering is None else numbering
    question_counts: Counter[str] = Counter()
    answer_counts: Counter[str] = Counter()
    question = clean_text(record.question, settings, patterns, question_counts)
    answer = clean_text(record.answer, settings, patterns, answer_counts)
    both = question_counts + answer_counts
    totals["html"] += bool(both["html"])
    totals["normalized"] += bool(both["normalized"])
    totals["boilerplate_lines"] += both["boilerplate_lines"]
    totals["control_tokens"] += both["control_tokens"]
    for key, value in both.items():
        if key.startswith("pii:"):
            totals[key] += value
    if record.answer and record.answer.strip() and not (answer or "").strip():
        totals["emptied"] += 1
    other: Counter[str] = Counter()
    focus = scrub_text(normalize_text(record.focus, settings.unicode_form) or record.focus, settings, other) or ""
    update = {
        "question": question, "answer": answer, "focus": focus,
        "id": scrub_text(record.id, settings, other, numbering),
        "source": scrub_text(record.source, settings, other, numbering),
        "section": scrub_text(record.section, settings, other),
        "locator": scrub_text(record.locator, settings, other),
        "raw": scrub_text(record.raw, settings, other),
    }
    for key, value in other.items():
        totals[key] += value
    return record.model_copy(update=update)


def clean_records(raw: RecordBatch, documents: DocumentBatch, settings: CleaningSettings) -> CleaningResult:
    """Cleaned, deduplicated records plus the duplicates (as quarantine items) and the counts."""
    patterns = compile_patterns(settings.boilerplate_patterns)
    document_records, conversion = documents_to_records(documents.documents, settings.chunking)
    originals = list(raw.records) + document_records
    totals: Counter[str] = Counter()
    numbering: dict[str, str] = {}
    cleaned = [
        clean_record(r, settings, patterns, totals, numbering)
        for r in tqdm(originals, desc="clean", unit="rec", disable=len(originals) < 5000)
    ]
    scratch: Counter[str] = Counter()
    files = [
        c.model_copy(update={"source": scrub_text(c.source, settings, scratch, numbering) or c.source})
        for c in raw.files
    ]
    duplicates = find_duplicates(cleaned, settings.dedup)
    dropped = {d.index for d in duplicates}
    quarantine = Quarantine(
        items=[
            QuarantinedRecord(
                record=cleaned[d.index],  # scrubbed: the quarantine never holds personal data
                reasons=[
                    f"duplicate_of:{cleaned[d.kept_index].id} ({d.kind}"
                    + (f", similarity {d.similarity:.2f})" if d.kind == "near" else ")")
                ],
            )
            for d in duplicates
        ]
    )
    kept = [r for i, r in enumerate(cleaned) if i not in dropped]
    stats = CleaningStats(
        records_in=len(originals), from_documents=conversion, records_out=len(kept),
        duplicates_exact=sum(d.kind == "exact" for d in duplicates),
        duplicates_near=sum(d.kind == "near" for d in duplicates),
        normalized=totals["normalized"], html_stripped=totals["html"], boilerplate_lines=totals["boilerplate_lines"],
        pii={k.split(":", 1)[1]: v for k, v in sorted(totals.items()) if k.startswith("pii:")},
        emptied=totals["emptied"], control_tokens=totals["control_tokens"],
        rejected_by_reader=sum(r.rejected is not None for r in cleaned),
    )
    if stats.records_out + len(quarantine) != stats.records_in:  # never silently lose a record
        raise AssertionError(f"cleaning lost records: {stats.records_in} in, {stats.records_out} out, {len(quarantine)} duplicates")
    logger.info(
        "Cleaning: %d in (%d from %d documents), %d out, %d exact + %d near duplicates, %d html, %d boilerplate lines, pii %s",
        stats.records_in, conversion.records, conversion.documents, stats.records_out, stats.duplicates_exact,
        stats.duplicates_near, stats.html_stripped, stats.boilerplate_lines, stats.pii,
    )
    return CleaningResult(records=RecordBatch(records=kept, files=files), duplicates=quarantine, stats=stats)
