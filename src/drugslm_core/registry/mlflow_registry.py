"""Register adapters as model versions and move the champion alias (run logging: ``registry.tracking``).

Every function here talks to MLflow (a side effect) and expects the tracking
URI to be set already: inside a ZenML step the MLflow experiment tracker does
that and opens the run; elsewhere call ``mlflow.set_tracking_uri`` first.
Model versions hold the LoRA adapter only (a few MB), with the base model's
name and hash as tags, so a version can be rebuilt offline from the cache.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel

from drugslm_core.data.formatting import InstructionDataset
from drugslm_core.evaluation.compare import EvaluationResult
from drugslm_core.evaluation.promotion import PromotionDecision
from drugslm_core.modeling.training import TrainingOutcome
from drugslm_core.registry.aliases import current_version, promote_version
from drugslm_core.registry.tracking import active_run_id

logger = logging.getLogger(__name__)

ADAPTER_ARTIFACT_PATH = "adapter"
MERGED_ARTIFACT_PATH = "merged"


class RegistrationResult(BaseModel):
    model_name: str
    version: str
    run_id: str
    promoted: bool
    champion_version: str | None
    """The version holding the champion alias after this step."""
    decision: str
    tracking_uri: str


def decision_tags(decision: PromotionDecision) -> dict[str, str]:
    """The gate's decision and every check, as MLflow tags."""
    tags = {
        "promotion_decision": decision.summary[:5000],
        "gate.promote": str(decision.promote).lower(),
        "gate.primary_metric": decision.primary_metric,
    }
    for check in decision.checks:
        key = "gate.check." + "".join(c if c.isalnum() or c in "._-" else "_" for c in check.name)
        tags[key] = f"{'pass' if check.passed else 'FAIL'}: {check.detail}"[:5000]
    tags["gate.explanation"] = decision.explain()[:5000]
    return tags


class VersionDecision(BaseModel):
    version: str
    promote: bool | None
    """The gate's verdict when the version was registered (``None``: no gate tags)."""
    explanation: str


def version_decisions(client: Any, model_name: str) -> list[VersionDecision]:
    """Every registered version of ``model_name``, oldest first, with the gate's decision in plain words
    (the ``gate.explanation`` tag; versions registered before it existed fall back to the check tags)."""
    versions = sorted(client.search_model_versions(f"name='{model_name}'"), key=lambda v: int(v.version))
    decisions = []
    for version in versions:
        tags = version.tags or {}
        promote = {"true": True, "false": False}.get(tags.get("gate.promote", ""))
        explanation = tags.get("gate.explanation") or "\n".join(
            [tags.get("promotion_decision", "no gate decision recorded")]
            + [f"  {key.removeprefix('gate.check.')}: {value}" for key, value in sorted(tags.items())
               if key.startswith("gate.check.")]
        )
        decisions.append(VersionDecision(version=str(version.version), promote=promote, explanation=explanation))
    return decisions


RETRIEVAL_INDEX_HASH = "retrieval_index_hash"
RETRIEVAL_INDEX_URI = "retrieval_index_uri"


def retrieval_index_tags(content_hash: str, uri: str, artifact_id: str) -> dict[str, str]:
    """Which retrieval index a version was evaluated with, and where the server loads it from."""
    return {RETRIEVAL_INDEX_HASH: content_hash, RETRIEVAL_INDEX_URI: uri, "retrieval_index_artifact_id": artifact_id}


def lineage_tags(run_id: str, run_name: str, pipeline_name: str, dataset: InstructionDataset) -> dict[str, str]:
    """Tags that tie an MLflow run and model version to the orchestrator run and the exact data,
    plus the prompt format a server needs to query the model as it was trained."""
    return {
        "zenml_run_id": run_id,
        "zenml_run_name": run_name,
        "zenml_pipeline": pipeline_name,
        "dataset_fingerprint": dataset.fingerprint(),
        "domain_tag": dataset.domain_tag,
        "system_prompt": dataset.system_prompt,
    }


_WEIGHTS = {"qlora": "QLoRA adapter on", "lora": "LoRA adapter on", "full": "Full fine-tune of"}


def register_adapter(
    outcome: TrainingOutcome,
    evaluation: EvaluationResult,
    decision: PromotionDecision,
    model_name: str,
    alias: str,
    lineage: dict[str, str],
    history_length: int = 30,
) -> RegistrationResult:
    """Log the adapter to the active run, register it as a new version, move ``alias`` if promoted.

    The gate's decision and checks become tags of the run and of the version; a
    promotion is recorded in the alias history (see :mod:`drugslm_core.registry.aliases`).
    """
    import mlflow

    run_id = active_run_id()
    client = mlflow.MlflowClient()
    tags = {
        **lineage,
        "base_model_name": outcome.base_model.name,
        "base_model_sha256": outcome.base_model.sha256,
        "base_model_source": outcome.base_model.source,
        "base_eval_perplexity": f"{evaluation.base.perplexity:.4f}",
        "tuned_eval_perplexity": f"{evaluation.tuned.perplexity:.4f}",
        "eval_fingerprint": evaluation.eval_fingerprint,
        "benchmark": evaluation.benchmark,
        "training_mode": outcome.mode,
    }
    mlflow.set_tags(tags)
    mlflow.log_artifacts(outcome.adapter_dir, artifact_path=ADAPTER_ARTIFACT_PATH)
    if outcome.merged_dir and outcome.merged_dir != outcome.adapter_dir:
        # For servers without LoRA support; the version's source stays the adapter.
        mlflow.log_artifacts(outcome.merged_dir, artifact_path=MERGED_ARTIFACT_PATH)
    _ensure_registered_model(client, model_name)
    # An adapter is a folder of run artifacts, not an MLflow "logged model", so the
    # version is created from its runs:/ source (mlflow.register_model wants a logged model).
    version = client.create_model_version(
        model_name, source=f"runs:/{run_id}/{ADAPTER_ARTIFACT_PATH}", run_id=run_id,
        tags={**tags, **decision_tags(decision)},
    )
    client.update_model_version(
        model_name, version.version, description=f"{_WEIGHTS[outcome.mode]} {outcome.base_model.name}. {decision.summary}"[:5000]
    )
    if decision.promote:
        promote_version(client, model_name, alias, str(version.version), decision.summary[:500], history_length)
        logger.info("Model %s version %s is now @%s", model_name, version.version, alias)
    mlflow.set_tags(decision_tags(decision))
    champion = current_version(client, model_name, alias)
    return RegistrationResult(
        model_name=model_name,
        version=str(version.version),
        run_id=run_id,
        promoted=decision.promote,
        champion_version=champion,
        decision=decision.summary,
        tracking_uri=mlflow.get_tracking_uri(),
    )


def _ensure_registered_model(client: Any, model_name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(model_name)
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        client.create_registered_model(
            model_name, description="drugslm: LoRA adapters for a drug-information assistant"
        )
