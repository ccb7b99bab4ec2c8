from typing import Annotated

from zenml import get_step_context, log_metadata, step

from drugslm_core.config import RegistrySettings
from drugslm_core.data.formatting import InstructionDataset
from drugslm_core.evaluation.compare import EvaluationResult
from drugslm_core.evaluation.promotion import PromotionDecision
from drugslm_core.modeling.training import TrainingOutcome
from drugslm_core.registry.aliases import AliasMove
from drugslm_core.registry.mlflow_registry import (
    RegistrationResult,
    lineage_tags,
    register_adapter,
    retrieval_index_tags,
)
from drugslm_core.registry.rollback import rollback_champion as rollback_champion_alias
from drugslm_core.retrieval.index import RetrievalIndex


@step(experiment_tracker=True)
def register(
    adapter: TrainingOutcome,
    evaluation: EvaluationResult,
    decision: PromotionDecision,
    dataset: InstructionDataset,
    settings: RegistrySettings,
    retrieval_index: RetrievalIndex | None = None,
) -> Annotated[RegistrationResult, "registration"]:
    """Register the adapter in MLflow; move the ``champion`` alias only if the gate said so. The version
    names the retrieval index it was evaluated with (content hash, artifact URI and id).

    The MLflow alias is the one record of which version is champion (its history is the
    alias-history tag); the ZenML model version only carries the run's metadata."""
    context = get_step_context()
    run = context.pipeline_run
    lineage = lineage_tags(str(run.id), run.name, run.pipeline.name if run.pipeline else "", dataset)
    if retrieval_index is not None:
        artifact = context.inputs["retrieval_index"][0]
        lineage.update(retrieval_index_tags(retrieval_index.content_hash, artifact.uri, str(artifact.id)))
    result = register_adapter(
        adapter, evaluation, decision, settings.model_name, settings.champion_alias, lineage,
        settings.alias_history_length,
    )
    log_metadata({"mlflow_model": result.model_name, "mlflow_version": result.version,
                  "promoted": result.promoted, "decision": result.decision,
                  "gate_checks": {check.name: ("pass: " if check.passed else "FAIL: ") + check.detail
                                  for check in decision.checks}}, infer_model=True)
    return result


@step(experiment_tracker=True, enable_cache=False)
def rollback_champion(settings: RegistrySettings, reason: str) -> Annotated[AliasMove, "rollback"]:
    """Move the ``champion`` alias back to the previous version (recorded in the alias history)."""
    move = rollback_champion_alias(settings.model_name, settings.champion_alias, reason, settings.alias_history_length)
    log_metadata({"mlflow_model": settings.model_name, "restored_version": move.version,
                  "rolled_back_version": move.previous or "", "reason": reason})
    return move
