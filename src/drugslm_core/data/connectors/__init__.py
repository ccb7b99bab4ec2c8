"""Source connectors (openFDA, PubMed, arXiv, ANVISA) and PDF leaflet extraction, one interface."""

from __future__ import annotations

from drugslm_core.config import ConnectorSettings
from drugslm_core.data.connectors.base import (
    Connector,
    ConnectorError,
    ConnectorRun,
    CursorStore,
    HttpFetcher,
    Page,
    RateLimiter,
    run_connector,
)


def run_enabled_connectors(settings: ConnectorSettings) -> list[ConnectorRun]:
    """Every enabled connector, in a fixed order (openFDA, PubMed, arXiv, ANVISA)."""
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
        if section.enabled:
            runs.append(run_connector(factory(section), section.http, section.max_documents, state))  # type: ignore[arg-type]
    return runs


__all__ = [
    "Connector", "ConnectorError", "ConnectorRun", "CursorStore", "HttpFetcher", "Page", "RateLimiter",
    "run_connector", "run_enabled_connectors",
]
