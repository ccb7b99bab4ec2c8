"""Everything the configured sources hold: the bundled corpus, local files, PDF leaflets, connectors.

Question/answer files become records directly; PDF leaflets and connector results are
documents (turned into records by the clean step, where chunking happens); every HTTP
response body is kept as a raw payload for lineage.
"""

from __future__ import annotations

import logging

from pydantic import BaseModel, Field
from tqdm.auto import tqdm

from drugslm_core.config import ChunkingSettings, DataSettings
from drugslm_core.data.connectors import acknowledge_runs, quarantine_records, run_enabled_connectors, run_summary
from drugslm_core.data.connectors.pdf import read_pdf_leaflet
from drugslm_core.data.documents import DocumentBatch, RawPayloadBatch
from drugslm_core.data.questions import documents_to_records
from drugslm_core.data.records import RecordBatch
from drugslm_core.data.sample_corpus import leaflet_records
from drugslm_core.data.sources import detect_format, expand_sources, read_source_file

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


def ingest_sources(settings: DataSettings) -> IngestResult:
    """All records and documents from every configured source, in a stable order."""
    records = leaflet_records() if settings.include_sample_corpus else []
    summaries = [SourceSummary(source="sample-corpus", records=len(records))] if records else []
    documents = []
    files = list(expand_sources(settings.files))
    file_records, without_records = 0, []
    for source in tqdm(files, desc="ingest files", unit="file", disable=len(files) < 20):
        fmt = detect_format(source.path) if source.format == "auto" else source.format
        if fmt == "pdf":
            documents.append(read_pdf_leaflet(source.path, source.drug, source.language))
            continue
        found = read_source_file(source)
        if not found:
            without_records.append(str(source.path))
        file_records += len(found)
        records.extend(found)
    if without_records:
        logger.warning("%d file(s) hold no question/answer pairs: %s", len(without_records), without_records[:10])
    if files:
        summaries.append(
            SourceSummary(
                source="files", documents=len(documents), records=file_records,
                files_without_records=len(without_records),
            )
        )
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
        records=RecordBatch(records=records), documents=DocumentBatch(documents=documents),
        payloads=RawPayloadBatch(payloads=payloads), sources=summaries,
    )
    acknowledge_runs(runs)  # ingest holds the connectors' documents now: their staged pages are done
    logger.info(
        "Ingested %d records and %d documents (%d raw payloads): %s",
        len(records), len(documents), len(payloads), [s.model_dump() for s in summaries],
    )
    return result


def ingest_records(settings: DataSettings, chunking: ChunkingSettings | None = None) -> RecordBatch:
    """Records only: documents (PDFs, connectors) are turned into records with ``chunking``."""
    result = ingest_sources(settings)
    extra, _ = documents_to_records(result.documents.documents, chunking or ChunkingSettings())
    return RecordBatch(records=result.records.records + extra)
