"""ingest → clean → validate → gate → build dataset (+ retrieval index) → split → finetune (QLoRA by default)
→ evaluate → register → deploy (when the gate promoted and ``deployment.after_promotion`` is on). With
``preference.enabled`` (``configs/preference.yaml``) a DPO/KTO stage on reviewed feedback runs between
finetune and evaluate.

Run it with ``zenml pipeline run pipelines.training.training_pipeline -c configs/local.yaml``.
"""

from typing import Any

from zenml import pipeline

from drugslm_core.config import load_settings
from pipelines.data import prepare_dataset_and_records
from steps import base_model, evaluate, finetune, register, split
from steps.deployment import deploy_promoted
from steps.preference import preference
from steps.retrieval import build_retrieval_index


@pipeline
def training_pipeline(config: dict[str, Any] | str | None = None) -> None:
    """``config`` is the settings tree (``parameters.config`` in the run config), or the path of a
    run config to take it from; env vars override it."""
    settings = load_settings(config)
    base = base_model(settings.base_model)
    dataset, accepted = prepare_dataset_and_records(settings, base)  # ingest → clean → validate → gate → build → profile
    index = build_retrieval_index(accepted, settings.retrieval)  # the knowledge base served with this model
    train, validation, eval_split = split(dataset, settings.split)
    adapter = finetune(train, validation, base, settings.training)
    if settings.preference.enabled:  # on top of the SFT adapter, then the same evaluation and gate
        adapter = preference(adapter, eval_split, settings.preference, settings.data, settings.cleaning,
                             settings.validation)
    evaluation, decision, _ = evaluate(
        adapter, eval_split, settings.evaluation, settings.registry, index, settings.retrieval
    )
    registration = register(adapter, evaluation, decision, dataset, settings.registry, index)
    deploy_promoted(registration, base, settings)
