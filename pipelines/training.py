"""ingest → validate → gate → build dataset → split → QLoRA finetune → evaluate → register.

Run it with ``zenml pipeline run pipelines.training.training_pipeline -c configs/local.yaml``.
"""

from typing import Any

from zenml import pipeline

from drugslm_core.config import load_settings
from steps import base_model, build_dataset, evaluate, finetune, ingest, quality_gate, register, split, validate


@pipeline
def training_pipeline(config: dict[str, Any] | None = None) -> None:
    """``config`` is the settings tree (``parameters.config`` in the run config); env vars override it."""
    settings = load_settings(config)
    base = base_model(settings.base_model)
    records = ingest(settings.data)
    accepted, quarantine, _ = validate(records, settings.validation)
    gate = quality_gate(accepted, quarantine, settings.validation)
    dataset = build_dataset(accepted, base, settings.data, after=gate)
    train, eval_split = split(dataset, settings.split)
    adapter = finetune(train, base, settings.training)
    evaluation, _ = evaluate(adapter, eval_split, settings.evaluation, settings.registry)
    register(adapter, evaluation, dataset, settings.registry)
