"""The Kubeflow option: a ZenML orchestrator flavor ``drugslm_kubeflow`` and an offline KFP v2 compile.

``drugslm_kubeflow`` is ZenML 0.98's Kubeflow orchestrator with two defects fixed
that otherwise make a GPU step impossible to express (both found while writing
tests/k8s/test_kubeflow_compile.py):

* ``KubeflowOrchestratorSettings`` always rebuilds ``pod_settings`` from the
  legacy top-level ``node_selectors``/``node_affinity`` fields, so the
  ``pod_settings.node_selectors.accelerator`` the orchestrator reads the
  accelerator type from is always empty (and the legacy fields are dropped by
  the compiler as unknown). Here given ``pod_settings`` are kept and the legacy
  fields are still migrated.
* ``ResourceSettings.memory`` reaches ``PipelineTask.set_memory_limit`` as a float
  of gigabytes, which kfp rejects; here it is passed as a quantity (``"32768Mi"``).

Everything else (component per step, DAG, environment, upload to the KFP API) is
ZenML's. kfp is pinned to 2.16.1: ZenML 0.98 passes components, not tasks, to
``PipelineTask.after``, which kfp 2.17 refuses.

Register and use it (docs/kubernetes.md, "Kubeflow Pipelines instead")::

    zenml orchestrator flavor register drugslm_ops.kubeflow.DrugslmKubeflowOrchestratorFlavor
    zenml orchestrator register kubeflow --flavor=drugslm_kubeflow --kubernetes_context=<ctx>
    zenml pipeline run pipelines.training.training_pipeline -c configs/kubeflow-gpu.yaml

``python -m drugslm_ops.kubeflow compile`` writes the KFP v2 pipeline spec of the training
pipeline without a cluster, ZenML server or Docker (for review, or to check what
a run config asks of the cluster).
"""

from __future__ import annotations

import types
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml
from pydantic import model_validator
from zenml.integrations.kubeflow.flavors.kubeflow_orchestrator_flavor import (
    KubeflowOrchestratorConfig,
    KubeflowOrchestratorFlavor,
    KubeflowOrchestratorSettings,
)
from zenml.integrations.kubeflow.orchestrators.kubeflow_orchestrator import KubeflowOrchestrator
from zenml.integrations.kubernetes.pod_settings import KubernetesPodSettings
from zenml.utils.pydantic_utils import before_validator_handler

if TYPE_CHECKING:
    from kfp import dsl
    from zenml.config.resource_settings import ResourceSettings
    from zenml.stack import Stack

FLAVOR = "drugslm_kubeflow"
DEFAULT_RUN_CONFIG = Path("configs/kubeflow-gpu.yaml")
PLACEHOLDER_SNAPSHOT_ID = uuid.UUID(int=0)
"""Stands for the snapshot id the ZenML server assigns when a run is created."""


def _keep_pod_settings(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """Keep ``pod_settings`` as given; fold the legacy ``node_selectors`` field into it."""
    legacy_selectors = data.pop("node_selectors", None) or {}
    if data.pop("node_affinity", None):
        raise ValueError("node_affinity is not supported by drugslm_kubeflow: use pod_settings.affinity")
    pod_settings = data.get("pod_settings") or {}
    if isinstance(pod_settings, KubernetesPodSettings):
        pod_settings = pod_settings.model_dump(exclude_unset=True)
    if legacy_selectors:
        pod_settings = {**pod_settings, "node_selectors": {**legacy_selectors, **pod_settings.get("node_selectors", {})}}
    if pod_settings:
        data["pod_settings"] = pod_settings
    if (data.get("client_username") is None) != (data.get("client_password") is None):
        raise ValueError("`client_username` and `client_password` both need to be set together.")
    return data


# Same name as ZenML's validator: pydantic replaces an inherited validator of the same name.
_KEEP_POD_SETTINGS = model_validator(mode="before")(classmethod(before_validator_handler(_keep_pod_settings)))


class DrugslmKubeflowOrchestratorSettings(KubeflowOrchestratorSettings):
    """``KubeflowOrchestratorSettings`` whose ``pod_settings`` survive validation."""

    _validate_and_migrate_pod_settings = _KEEP_POD_SETTINGS


class DrugslmKubeflowOrchestratorConfig(KubeflowOrchestratorConfig):
    """``KubeflowOrchestratorConfig`` with the same fix."""

    _validate_and_migrate_pod_settings = _KEEP_POD_SETTINGS


class DrugslmKubeflowOrchestrator(KubeflowOrchestrator):
    """ZenML's Kubeflow orchestrator with memory limits passed as Kubernetes quantities."""

    @property
    def settings_class(self) -> type[DrugslmKubeflowOrchestratorSettings]:
        return DrugslmKubeflowOrchestratorSettings

    def _configure_container_resources(
        self,
        dynamic_component: dsl.PipelineTask,
        resource_settings: ResourceSettings,
        node_selector_constraint: tuple[str, str] | None = None,
    ) -> dsl.PipelineTask:
        memory_mib = resource_settings.get_memory("MiB")
        task = super()._configure_container_resources(
            dynamic_component, resource_settings.model_copy(update={"memory": None}), node_selector_constraint
        )
        return task.set_memory_limit(f"{round(memory_mib)}Mi") if memory_mib else task


class DrugslmKubeflowOrchestratorFlavor(KubeflowOrchestratorFlavor):
    """``zenml orchestrator flavor register drugslm_ops.kubeflow.DrugslmKubeflowOrchestratorFlavor``."""

    @property
    def name(self) -> str:
        return FLAVOR

    @property
    def config_class(self) -> type[DrugslmKubeflowOrchestratorConfig]:
        return DrugslmKubeflowOrchestratorConfig

    @property
    def implementation_class(self) -> type[DrugslmKubeflowOrchestrator]:
        return DrugslmKubeflowOrchestrator


# --------------------------------------------------------------------------
# Offline compile: the same submit_pipeline, with the upload left out
# --------------------------------------------------------------------------


class _OfflineOrchestrator(DrugslmKubeflowOrchestrator):
    """Compiles like the real one; stops before the KFP API and uses the prebuilt image."""

    image = ""
    compiled: Path | None = None

    def get_image(self, snapshot: Any, step_name: str | None = None) -> str:
        return self.image

    def _upload_and_run_pipeline(self, snapshot: Any, pipeline_file_path: str, run_name: str) -> None:
        self.compiled = Path(pipeline_file_path)


def _offline_stack(workdir: Path, image: str) -> Stack:
    """An in-memory stack (never registered) with what the training pipeline's steps need."""
    from zenml.artifact_stores import LocalArtifactStore, LocalArtifactStoreConfig
    from zenml.container_registries.base_container_registry import BaseContainerRegistry, BaseContainerRegistryConfig
    from zenml.enums import StackComponentType
    from zenml.integrations.mlflow.experiment_trackers import MLFlowExperimentTracker
    from zenml.integrations.mlflow.flavors.mlflow_experiment_tracker_flavor import MLFlowExperimentTrackerConfig
    from zenml.stack import Stack

    now = datetime.now(timezone.utc)

    def component(cls: type, config: Any, flavor: str, kind: StackComponentType, name: str) -> Any:
        return cls(name=name, id=uuid.uuid4(), config=config, flavor=flavor, type=kind, user=None, created=now, updated=now)

    orchestrator = component(
        _OfflineOrchestrator, DrugslmKubeflowOrchestratorConfig(kubernetes_context="offline"),
        FLAVOR, StackComponentType.ORCHESTRATOR, "kubeflow",
    )
    orchestrator.image = image
    return Stack(
        id=uuid.uuid4(),
        name="drugslm-kubeflow-offline",
        orchestrator=orchestrator,
        artifact_store=component(
            LocalArtifactStore, LocalArtifactStoreConfig(path=str(workdir / "artifacts")),
            "local", StackComponentType.ARTIFACT_STORE, "artifacts",
        ),
        container_registry=component(
            BaseContainerRegistry, BaseContainerRegistryConfig(uri=image.rsplit("/", 1)[0]),
            "default", StackComponentType.CONTAINER_REGISTRY, "registry",
        ),
        experiment_tracker=component(
            MLFlowExperimentTracker, MLFlowExperimentTrackerConfig(),  # not contacted: compile only
            "mlflow", StackComponentType.EXPERIMENT_TRACKER, "mlflow",
        ),
    )


def compile_training_pipeline(run_config: Path, output: Path) -> dict[str, Any]:
    """Compile the training pipeline with ``run_config`` to a KFP v2 pipeline spec at ``output``.

    ZenML's compiler resolves the run config against an in-memory Kubeflow stack,
    then the orchestrator's own ``submit_pipeline`` builds and compiles the KFP
    pipeline; only the upload is left out. Steps reference
    ``PLACEHOLDER_SNAPSHOT_ID`` where a real run has the server's snapshot id.
    """
    from zenml.config.compiler import Compiler

    from drugslm_ops import repository_pipeline
    from drugslm_ops.k8s_manifests import load_run_config, pipeline_image

    training_pipeline = repository_pipeline("pipelines.training.training_pipeline")

    config = load_run_config(run_config)
    stack = _offline_stack(output.parent, pipeline_image(config))
    pipeline = training_pipeline.with_options(config_path=str(run_config))
    pipeline.prepare()
    snapshot = Compiler().compile(pipeline=pipeline, stack=stack, run_configuration=config)
    submitted = types.SimpleNamespace(  # what submit_pipeline reads of a server-side snapshot
        id=PLACEHOLDER_SNAPSHOT_ID,
        pipeline_configuration=snapshot.pipeline_configuration,
        step_configurations=snapshot.step_configurations,
    )
    stack.orchestrator.submit_pipeline(
        snapshot=submitted, stack=stack, base_environment={},
        step_environments={name: {} for name in snapshot.step_configurations},
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(stack.orchestrator.compiled.read_text())
    return yaml.safe_load(output.read_text())


app = typer.Typer(help="The Kubeflow Pipelines option, offline.", no_args_is_help=True, add_completion=False)


@app.callback()
def _group() -> None:
    """Keep ``compile`` a subcommand (room for more)."""


@app.command("compile")
def compile_command(
    config: Annotated[Path, typer.Option("--config", help="run config for the Kubeflow stack")] = DEFAULT_RUN_CONFIG,
    output: Annotated[Path, typer.Option("-o", "--output", help="where to write the KFP v2 spec")] = Path(
        "build/kfp/training_pipeline.yaml"
    ),
) -> None:
    """Write the KFP v2 pipeline spec ZenML would upload for the training pipeline."""
    if not config.is_file():
        raise typer.BadParameter(f"{config} not found (run from the repository root)")
    spec = compile_training_pipeline(config, output)
    executors = spec["deploymentSpec"]["executors"]
    for name, executor in sorted(executors.items()):
        accelerator = executor["container"].get("resources", {}).get("accelerator")
        typer.echo(f"{name:28} {accelerator or ''}")
    typer.echo(f"wrote {output} ({len(executors)} tasks)")


if __name__ == "__main__":
    app()
