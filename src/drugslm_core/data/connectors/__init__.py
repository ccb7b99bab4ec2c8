"""Source connectors (openFDA, PubMed, arXiv, ANVISA) and PDF leaflet extraction, one interface."""

from __future__ import annotations

import logging

from drugslm_core.config import ConnectorSettings
from drugslm_core.data.connectors.base import (
    Connector,
    ConnectorError,
    ConnectorRun,
    CursorStore,
    HttpFetcher,
    Page,
    RateLimiter,
    StagingArea,
    acknowledge_runs,
    run_connector,
)
from drugslm_core.data.records import QARecord

logger = logging.getLogger(__name__)


def run_enabled_connectors(settings: ConnectorSettings) -> list[ConnectorRun]:
    """Every enabled connector, in a fixed order (openFDA, PubMed, arXiv, ANVISA).

    A source that fails (after its retries) is reported in its run's ``error`` with what it
    fetched before the failure; the other sources still run. Call :func:`acknowledge_runs`
    once ingest holds the documents, so staged pages are not replayed again.
    """
    from drugslm_core.data.connectors.anvisa import AnvisaConnector
    from drugslm_core.data.connectors.arxiv import ArxivConnector
    from drugslm_core.data.connectors.openfda import OpenFDAConnector
    from drugslm_core.data.connectors.pubmed import PubMedConnector

    state = CursorStore(settings.state_dir) if settings.state_dir else None
    runs = []
    for section, factory in (
        (settings.openfda, OpenFDAConnector), (settings.pubmed, PubMedConnector),
        (settings.arxiv, ArxivConnector), (settings.anvisa, AnvisaConnector),
    ):
        if not section.enabled:
            continue
        try:
            runs.append(run_connector(factory(section), section.http, section.max_documents, state))  # type: ignore[arg-type]
        except ConnectorError as error:
            run = error.run or ConnectorRun(source=error.source)
            run.error = str(error)
            logger.error(
                "%s failed; kept the %d documents it fetched before (the cursor resumes after them), "
                "other sources go on: %s", run.source, len(run.documents), error,
            )
            runs.append(run)
    return runs


def quarantine_records(run: ConnectorRun) -> list[QARecord]:
    """The run's quarantine entries as records for the quality gate (no question, no answer), marked
    ``rejected`` with their reasons, so the gate quarantines them under that reason: visible, not dropped."""
    return [q.record.model_copy(update={"rejected": "; ".join(q.reasons)}) for q in run.quarantine]


def run_summary(run: ConnectorRun) -> dict[str, object]:
    """What a run did, for the ingest step's metadata and log (``stopped``: "fetched N of M: why")."""
    return {
        "source": run.source, "documents": len(run.documents), "pages": run.pages, "requests": run.requests,
        "retries": run.retries, "exhausted": run.exhausted, "replayed": run.replayed, "total": run.total,
        "stopped": run.stopped, "error": run.error,
        "quarantined": [f"{q.record.locator}: {'; '.join(q.reasons)}" for q in run.quarantine],
    }


__all__ = [
    "Connector", "ConnectorError", "ConnectorRun", "CursorStore", "HttpFetcher", "Page", "RateLimiter",
    "StagingArea", "acknowledge_runs", "quarantine_records", "run_connector", "run_enabled_connectors", "run_summary",
]
