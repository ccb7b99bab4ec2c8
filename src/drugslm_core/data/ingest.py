"""Everything the configured sources hold: the bundled corpus, local files, PDF leaflets, connectors.

Question/answer files become records directly; PDF leaflets and connector results are
documents (turned into records by the clean step, where chunking happens); every HTTP
response body is kept as a raw payload for lineage.
"""

from __future__ import annotations

import logging

from pydantic import BaseModel, Field
from tqdm.auto import tqdm

from drugslm_core.config import DataSettings
from drugslm_core.data.connectors import acknowledge_runs, quarantine_records, run_enabled_connectors, run_summary
from drugslm_core.data.connectors.pdf import read_pdf_leaflet
from drugslm_core.data.documents import DocumentBatch, RawPayloadBatch
from drugslm_core.data.feedback_candidates import feedback_candidates
from drugslm_core.data.records import QARecord, RecordBatch, SourceCount
from drugslm_core.data.sample_corpus import leaflet_records
from drugslm_core.data.sources import detect_format, read_file, scan_sources

logger = logging.getLogger(__name__)


class SourceSummary(BaseModel):
    source: str
    documents: int = 0
    records: int = 0
    pages: int = 0
    requests: int = 0
    retries: int = 0
    exhausted: bool = True
    replayed: int = 0
    """Connectors: documents an earlier, failed run fetched and staged, handed to ingest now."""
    total: int | None = None
    stopped: str | None = None
    """Connectors: "fetched N of M: why" when a service limit stopped paging (the source is not done)."""
    error: str | None = None
    """Connectors: why the source failed (after its retries); the other sources still ran."""
    quarantined: list[str] = Field(default_factory=list)
    files_without_records: int = 0
    """Files that were read but hold no pairs (MedQuAD documents with an empty ``<QAPairs/>``)."""


class IngestResult(BaseModel):
    records: RecordBatch
    documents: DocumentBatch
    payloads: RawPayloadBatch
    sources: list[SourceSummary] = Field(default_factory=list)
    files: list[SourceCount] = Field(default_factory=list)
    """Per question/answer file: what it holds (each unit became one record)."""
    unhandled: list[str] = Field(default_factory=list)
    """Files in a configured folder that no reader handles (not read; listed in a warning)."""
    skipped: list[str] = Field(default_factory=list)
    """OS litter (``._*``, ``.DS_Store``, …) skipped by name."""
    renamed_ids: int = 0
    """Records whose own id also occurs in another file: their ids were qualified with the file's path."""


def qualify_colliding_ids(records: list[QARecord], relative: dict[str, str]) -> int:
    """An id a file gives its record that another file also uses becomes ``<relative path>:<id>``,
    so that two distinct records are never taken for duplicates (``faq.csv`` in two folders).
    Returns how many records were renamed."""
    # One dict entry per id (its first file), and a set of the ids seen in a second file: a set per
    # id would cost more memory than the records of a large file.
    first_source: dict[str, str] = {}
    shared: set[str] = set()
    for record in records:
        if record.source in relative and record.id is not None:
            if first_source.setdefault(record.id, record.source) != record.source:
                shared.add(record.id)
    del first_source
    renamed = 0
    for index, record in enumerate(records):
        if record.id is not None and record.id in shared:
            records[index] = record.model_copy(update={"id": f"{relative[record.source]}:{record.id}"})
            renamed += 1
    return renamed


def file_summary_lines(files: list[SourceCount]) -> list[str]:
    return [f"{c.source}: {c.held} {c.unit} ({c.format}{', ' + c.note if c.note else ''})" for c in files]


def ingest_sources(settings: DataSettings) -> IngestResult:
    """All records and documents from every configured source, in a stable order."""
    records = leaflet_records() if settings.include_sample_corpus else []
    summaries = [SourceSummary(source="sample-corpus", records=len(records))] if records else []
    documents = []
    scan = scan_sources(settings.files)
    if scan.litter:
        logger.info("Skipped %d OS litter file(s) by name: %s", len(scan.litter), scan.litter[:10])
    if scan.unhandled:
        logger.warning(
            "%d file(s) in the configured folders have a type no reader handles and were NOT read "
            "(name the format with data.files[].format, or remove them): %s",
            len(scan.unhandled), scan.unhandled[:20],
        )
    file_records: list[QARecord] = []
    counts: list[SourceCount] = []
    relative: dict[str, str] = {}
    without_records = []
    for source, rel in tqdm(scan.files, desc="ingest files", unit="file", disable=len(scan.files) < 20):
        fmt = detect_format(source.path) if source.format == "auto" else source.format
        if fmt == "pdf":
            documents.append(read_pdf_leaflet(source.path, source.drug, source.language))
            continue
        read = read_file(source, rel)
        if len(read.records) != read.count.held:  # each unit of the file is exactly one record
            raise AssertionError(f"{source.path}: {read.count.held} {read.count.unit} held, {len(read.records)} records")
        if not read.records:
            without_records.append(str(source.path))
        relative[str(source.path)] = rel
        counts.append(read.count)
        file_records.extend(read.records)
    renamed = qualify_colliding_ids(file_records, relative)
    if renamed:
        logger.warning("%d record(s) use an id another file also uses: qualified with their file's path", renamed)
    records.extend(file_records)
    if without_records:
        logger.warning("%d file(s) hold no question/answer pairs: %s", len(without_records), without_records[:10])
    if counts:
        logger.info("Files read (held = records):\n  %s", "\n  ".join(file_summary_lines(counts)))
    if scan.files:
        summaries.append(
            SourceSummary(
                source="files", documents=len(documents), records=len(file_records),
                files_without_records=len(without_records),
            )
        )
    if settings.feedback.files:  # served feedback: one record per export line, candidate or rejected with its reason
        feedback, feedback_counts = feedback_candidates(settings.feedback)
        records.extend(feedback)
        counts.extend(feedback_counts)
        summaries.append(SourceSummary(source="feedback", records=len(feedback)))
        logger.info("Feedback exports (held = records):\n  %s", "\n  ".join(file_summary_lines(feedback_counts)))
    payloads = []
    runs = run_enabled_connectors(settings.connectors)
    for run in runs:
        documents.extend(run.documents)
        payloads.extend(run.payloads)
        records.extend(quarantine_records(run))
        summaries.append(SourceSummary(**run_summary(run)))  # type: ignore[arg-type]
    if not records and not documents:
        raise ValueError(
            "no records ingested: enable data.include_sample_corpus, list data.files or enable a data.connectors source"
        )
    result = IngestResult(
        records=RecordBatch(records=records, files=counts), documents=DocumentBatch(documents=documents),
        payloads=RawPayloadBatch(payloads=payloads), sources=summaries, files=counts,
        unhandled=scan.unhandled, skipped=scan.litter, renamed_ids=renamed,
    )
    acknowledge_runs(runs)  # ingest holds the connectors' documents now: their staged pages are done
    logger.info(
        "Ingested %d records and %d documents (%d raw payloads): %s",
        len(records), len(documents), len(payloads), [s.model_dump() for s in summaries],
    )
    return result

