"""Merge the bundled corpus and configured files into one record batch."""

from __future__ import annotations

import logging

from tqdm.auto import tqdm

from drugslm_core.config import DataSettings
from drugslm_core.data.records import RecordBatch
from drugslm_core.data.sample_corpus import leaflet_records
from drugslm_core.data.sources import expand_sources, read_source_file

logger = logging.getLogger(__name__)


def ingest_records(settings: DataSettings) -> RecordBatch:
    """All records from every configured source, in a stable order."""
    records = leaflet_records() if settings.include_sample_corpus else []
    files = list(expand_sources(settings.files))
    for source in tqdm(files, desc="ingest files", unit="file", disable=len(files) < 20):
        records.extend(read_source_file(source))
    if not records:
        raise ValueError("no records ingested: enable data.include_sample_corpus or list data.files")
    batch = RecordBatch(records=records)
    logger.info("Ingested %d records: %s", len(batch), batch.counts_by_source())
    return batch
