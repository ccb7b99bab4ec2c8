"""ingest → clean → validate → quality gate → build dataset → profile.

Run it alone with ``zenml pipeline run pipelines.data.data_pipeline -c configs/local.yaml``;
the training pipeline calls :func:`prepare_dataset` for the same wiring.
"""

from typing import Any

from zenml import pipeline

from drugslm_core.config import Settings, load_settings
from steps import base_model, build_dataset, clean, ingest, profile_dataset, quality_gate, validate


def prepare_dataset(settings: Settings, base: Any) -> Any:
    """Wire the data steps inside a pipeline body; returns the ``instruction_dataset`` output."""
    return prepare_dataset_and_records(settings, base)[0]


def prepare_dataset_and_records(settings: Settings, base: Any) -> tuple[Any, Any]:
    """:func:`prepare_dataset`, also returning the accepted records (what the retrieval index is built from)."""
    records, documents, _ = ingest(settings.data)
    cleaned, duplicates, _ = clean(records, documents, settings.cleaning)
    accepted, quarantine, _ = validate(cleaned, duplicates, settings.validation)
    gate = quality_gate(accepted, quarantine, settings.validation)
    dataset = build_dataset(accepted, base, settings.data, after=gate)
    profile_dataset(dataset)
    return dataset, accepted


@pipeline
def data_pipeline(config: dict[str, Any] | None = None) -> None:
    """``config`` is the settings tree (``parameters.config`` in the run config); env vars override it."""
    settings = load_settings(config)
    prepare_dataset(settings, base_model(settings.base_model))
