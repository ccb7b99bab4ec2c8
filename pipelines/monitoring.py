"""champion's data (lineage) + current batch (same ingest → clean → validate) → drift and
knowledge-base report → trigger → (maybe) the training pipeline.

``zenml pipeline run pipelines.monitoring.monitoring_pipeline -c configs/monitoring.yaml``
"""

from typing import Any

from zenml import pipeline

from drugslm_core.config import load_settings
from steps import clean, ingest, validate
from steps.monitoring import champion_reference, monitor, retrain


@pipeline
def monitoring_pipeline(config: dict[str, Any] | str | None = None) -> None:
    """Current batch = today's data config plus ``monitoring.current_files``; served questions from
    ``monitoring.served_questions``."""
    settings = load_settings(config)
    data = settings.data.model_copy(update={"files": settings.data.files + settings.monitoring.current_files})
    reference = champion_reference(settings.registry)
    records, documents, _ = ingest(data)
    cleaned, duplicates, _ = clean(records, documents, settings.cleaning)
    accepted, _, _ = validate(cleaned, duplicates, settings.validation)
    benchmark = str(settings.evaluation.benchmark_path) if settings.evaluation.benchmark_path else None
    _, decision = monitor(reference, accepted, settings.monitoring, benchmark)
    retrain(decision, settings.monitoring)
