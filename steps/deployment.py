"""Deployment steps: resolve the version, deploy it to the configured target, record it."""

from pathlib import Path
from tempfile import mkdtemp
from typing import Annotated, Any

import mlflow
from zenml import log_metadata, step
from zenml.client import Client
from zenml.logger import get_logger

from drugslm_core.config import DeploymentSettings, RegistrySettings, Settings
from drugslm_core.modeling.base_model import BaseModelRef
from drugslm_core.registry.deployments import record_deployment as record_on_mlflow_version
from drugslm_core.registry.mlflow_registry import RegistrationResult
from drugslm_core.serving.deployment import (
    DeploymentPlan,
    DeploymentRecord,
    NothingToDeploy,
    RenderedManifests,
    check_base,
    deploy_local,
    deploy_production,
)
from drugslm_core.serving.deployment import (
    resolve_deployment as resolve_version,
)

logger = get_logger(__name__)


@step(experiment_tracker=True, enable_cache=False)
def resolve_deployment(deployment: DeploymentSettings, registry: RegistrySettings) -> Annotated[DeploymentPlan, "deployment_plan"]:
    """``@champion`` (or ``deployment.version``) and the base model it was trained on. No such
    version is an expected condition: one line, and the later steps do nothing."""
    try:
        return resolve_version(registry.model_name, registry.champion_alias, deployment.version)
    except NothingToDeploy as nothing:
        logger.warning("%s", nothing)
        return DeploymentPlan.nothing_to_deploy(registry.model_name, str(nothing))


@step(enable_cache=False)
def check_deployment_base(plan: DeploymentPlan, base: BaseModelRef) -> Annotated[DeploymentPlan, "checked_plan"]:
    """Refuse a version trained on another base model than this machine's (by hash)."""
    if plan.nothing is None:
        check_base(plan, base)
    return plan


@step(experiment_tracker=True, enable_cache=False)
def deploy(plan: DeploymentPlan, settings: Settings) -> tuple[
    Annotated[DeploymentRecord, "deployment"], Annotated[RenderedManifests | None, "serving_manifests"],
]:
    """Local: (re)start the managed server and smoke-test it. Production: publish the adapter to
    the artifact store and render the version's manifests."""
    if plan.nothing is not None:
        return DeploymentRecord.nothing_deployed(plan, settings.deployment.target), None
    return _deploy(plan, settings)


@step(experiment_tracker=True, enable_cache=False)
def record_deployment(record: DeploymentRecord, zenml_model: str | None = "drugslm") -> Annotated[str, "deployment_summary"]:
    """Tags on the MLflow version, metadata on the ZenML model version that registered it; fails the
    run (after recording) when the smoke test failed."""
    if record.skipped is not None:
        return _skip(record.skipped)
    record_on_mlflow_version(record.model_name, record.version, record.target, record.deployed_at, record.mlflow_fields())
    _log_on_zenml_version(record, zenml_model)
    return _finish(record)


@step(experiment_tracker=True, enable_cache=False)
def deploy_promoted(
    registration: RegistrationResult, base: BaseModelRef, settings: Settings
) -> Annotated[str, "deployment_summary"]:
    """The training pipeline's last step: deploy the version the gate just promoted, when
    ``deployment.after_promotion`` is on."""
    if not settings.deployment.after_promotion:
        return _skip("deployment.after_promotion is off: `make deploy` serves the champion")
    if not registration.promoted:
        return _skip(f"{registration.model_name} v{registration.version} was not promoted: nothing new to deploy")
    plan = resolve_version(registration.model_name, settings.registry.champion_alias, registration.version)
    if settings.deployment.target == "local":
        check_base(plan, base)
    record, _ = _deploy(plan, settings)
    record_on_mlflow_version(record.model_name, record.version, record.target, record.deployed_at, record.mlflow_fields())
    log_metadata({"deployment": record.model_dump(mode="json")}, infer_model=True)
    return _finish(record)


def _deploy(plan: DeploymentPlan, settings: Settings) -> tuple[DeploymentRecord, RenderedManifests | None]:
    if settings.deployment.target == "local":
        # The champion alias unless a version is pinned: the server follows the alias.
        return deploy_local(plan, settings, mlflow.get_tracking_uri(), pin_version=settings.deployment.version is not None), None
    store = Client().active_stack.artifact_store
    root = settings.deployment.artifact_root or store.path
    filesystem: Any = getattr(store, "filesystem", None) if settings.deployment.artifact_root is None else None
    return deploy_production(plan, settings.deployment, root, Path(mkdtemp(prefix="drugslm-deploy-")), filesystem)


def _log_on_zenml_version(record: DeploymentRecord, zenml_model: str | None) -> None:
    """The ZenML model version whose register step created this MLflow version (metadata
    ``mlflow_version``), as ``rollback_champion`` finds it."""
    client = Client()
    if not zenml_model or not client.list_models(name=zenml_model).items:
        return
    for version in client.list_model_versions(model_name_or_id=zenml_model, size=1000, hydrate=True).items:
        metadata = version.run_metadata
        if str(metadata.get("mlflow_version")) == record.version and metadata.get("mlflow_model") == record.model_name:
            log_metadata({"deployment": record.model_dump(mode="json")}, model_version_id=version.id)
            return
    logger.info("No ZenML model version of %s registered %s v%s: deployment recorded in MLflow only",
                zenml_model, record.model_name, record.version)


def _finish(record: DeploymentRecord) -> str:
    summary = record.summary()
    log_metadata({"deployment": record.model_dump(mode="json")})  # on this step
    if record.smoke_test == "failed":
        raise RuntimeError(f"deployment smoke test failed: {summary}")
    logger.info(summary)
    return summary


def _skip(reason: str) -> str:
    logger.info("Deployment skipped: %s", reason)
    return f"skipped: {reason}"
