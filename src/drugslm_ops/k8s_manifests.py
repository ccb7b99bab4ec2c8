"""The Kubernetes objects ZenML's Kubernetes orchestrator submits for drugslm, built offline.

The objects are built with ZenML 0.98's own builders
(``zenml.integrations.kubernetes.manifest_utils``) from a run config such as
``configs/k8s-gpu.yaml``, following the code paths of the orchestrator:

* a step Job (``kubernetes_orchestrator_entrypoint.py``: what the orchestrator pod
  creates for each step, e.g. ``finetune`` on the GPU pool);
* the orchestrator Job and, for a cron ``Schedule``, the CronJob wrapping it
  (``KubernetesOrchestrator._submit_orchestrator_job``).

No cluster, ZenML server or stack is needed. What cannot be known offline is
filled in explicitly: the snapshot id (assigned by the ZenML server when the run
or schedule is created; ``PLACEHOLDER_SNAPSHOT_ID`` here), the ZenML environment
variables (store URL etc.) and the project-id label.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any
from uuid import UUID

import yaml
from kubernetes import client as k8s_client
from zenml.config import DockerSettings, ResourceSettings
from zenml.config.pipeline_run_configuration import PipelineRunConfiguration
from zenml.entrypoints.step_entrypoint_configuration import StepEntrypointConfiguration
from zenml.integrations.kubernetes import kube_utils, manifest_utils
from zenml.integrations.kubernetes.constants import (
    KUBERNETES_SECRET_TOKEN_KEY_NAME,
    STEP_NAME_ANNOTATION_KEY,
)
from zenml.integrations.kubernetes.flavors import KubernetesOrchestratorSettings
from zenml.integrations.kubernetes.orchestrators.kubernetes_orchestrator_entrypoint_configuration import (
    KubernetesOrchestratorEntrypointConfiguration,
)
from zenml.integrations.kubernetes.pod_settings import KubernetesPodSettings
from zenml.utils.dict_utils import recursive_update

ORCHESTRATOR = "orchestrator"
PIPELINE_NAME = "training_pipeline"
PLACEHOLDER_SNAPSHOT_ID = UUID(int=0)
"""Stands for the snapshot id the ZenML server assigns when the run/schedule is created."""

# kind/apiVersion of the objects ZenML's builders return without them (the API call adds them).
_TYPE_META = {
    k8s_client.V1Pod: ("v1", "Pod"),
    k8s_client.V1Job: ("batch/v1", "Job"),
    k8s_client.V1CronJob: ("batch/v1", "CronJob"),
}


def load_run_config(path: Path) -> PipelineRunConfiguration:
    """Parse a run config YAML exactly as ``pipeline.with_options(config_path=...)`` validates it."""
    return PipelineRunConfiguration.model_validate(yaml.safe_load(Path(path).read_text()) or {})


def _settings_dict(settings: dict[str, Any] | None, key: str) -> dict[str, Any]:
    value = (settings or {}).get(key)
    return value.model_dump(exclude_unset=True) if value is not None else {}


def orchestrator_settings(
    run_config: PipelineRunConfiguration,
    step_name: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> KubernetesOrchestratorSettings:
    """Pipeline-level orchestrator settings, deep-merged with the step's (as ZenML's compiler does)."""
    merged = _settings_dict(run_config.settings, ORCHESTRATOR)
    step = run_config.steps.get(step_name) if step_name is not None else None
    if step is not None:  # a step without a `steps:` entry gets the pipeline-level settings
        merged = recursive_update(merged, _settings_dict(step.settings, ORCHESTRATOR), ignore_none=True)
    if overrides:
        merged = recursive_update(merged, overrides, ignore_none=True)
    settings = KubernetesOrchestratorSettings.model_validate(merged)
    if not settings.service_account_name:
        raise ValueError(
            "settings.orchestrator.service_account_name is not set: ZenML would try to create "
            "a service account in the cluster (use zenml-orchestrator, k8s/base)"
        )
    return settings


def step_resource_settings(run_config: PipelineRunConfiguration, step_name: str) -> ResourceSettings:
    """The ``resources`` (ZenML ``ResourceSettings``) declared for one step."""
    step = run_config.steps.get(step_name)
    values = _settings_dict(step.settings if step else None, "resources")
    return ResourceSettings.model_validate(values)


def pipeline_image(run_config: PipelineRunConfiguration) -> str:
    """The image every pod runs: the prebuilt parent image (``skip_build``), as the runbook requires."""
    docker = DockerSettings.model_validate(_settings_dict(run_config.settings, "docker"))
    if not (docker.skip_build and docker.parent_image):
        raise ValueError("settings.docker must set parent_image and skip_build: true (docs/kubernetes.md §6)")
    return docker.parent_image


def _job_name(settings: KubernetesOrchestratorSettings, *parts: str) -> str:
    """Same naming as the orchestrator: ``<prefix>-<8 hex>-<parts>`` sanitized as a label."""
    name = (settings.job_name_prefix or "") + "-" + "".join(random.choices("0123456789abcdef", k=8))
    for part in parts:
        name += f"-{part}"
    return kube_utils.sanitize_label(name)


def _with_token_secret(pod_settings: KubernetesPodSettings, snapshot_id: UUID) -> KubernetesPodSettings:
    """``pass_zenml_token_as_secret=True`` (docs §8): the API token comes from a Secret, not a literal."""
    pod_settings = pod_settings.model_copy(deep=True)
    pod_settings.env.append(
        {
            "name": "ZENML_STORE_API_TOKEN",
            "valueFrom": {
                "secretKeyRef": {"name": f"zenml-token-{snapshot_id}", "key": KUBERNETES_SECRET_TOKEN_KEY_NAME}
            },
        }
    )
    return pod_settings


def build_step_job(
    run_config: PipelineRunConfiguration,
    step_name: str,
    pipeline_name: str = PIPELINE_NAME,
    snapshot_id: UUID = PLACEHOLDER_SNAPSHOT_ID,
) -> k8s_client.V1Job:
    """The Job the orchestrator pod creates for ``step_name`` (kubernetes_orchestrator_entrypoint.py)."""
    settings = orchestrator_settings(run_config, step_name)
    pod_settings = kube_utils.apply_default_resource_requests(memory="400Mi", pod_settings=settings.pod_settings)
    pod_settings = _with_token_secret(pod_settings, snapshot_id)
    labels = {
        "pipeline": kube_utils.sanitize_label_value(pipeline_name),
        "step_name": kube_utils.sanitize_label_value(step_name),
    }
    pod = manifest_utils.build_pod_manifest(
        pod_name=None,
        image_name=pipeline_image(run_config),
        command=StepEntrypointConfiguration.get_entrypoint_command(),
        args=StepEntrypointConfiguration.get_entrypoint_arguments(step_name=step_name, snapshot_id=snapshot_id),
        privileged=settings.privileged,
        pod_settings=pod_settings,
        service_account_name=settings.step_pod_service_account_name or settings.service_account_name,
        labels=dict(labels),
        termination_grace_period_seconds=settings.pod_stop_grace_period,
    )
    step = run_config.steps.get(step_name)
    retries = step.retry.max_retries if step and step.retry else 0
    return manifest_utils.build_job_manifest(
        job_name=_job_name(settings, step_name, pipeline_name),
        pod_template=manifest_utils.pod_template_manifest_from_pod(pod),
        backoff_limit=retries + settings.backoff_limit_margin,
        ttl_seconds_after_finished=settings.ttl_seconds_after_finished,
        active_deadline_seconds=settings.active_deadline_seconds,
        pod_failure_policy=settings.pod_failure_policy,
        labels=labels,
        annotations={STEP_NAME_ANNOTATION_KEY: step_name},
    )


def build_orchestrator_job(
    run_config: PipelineRunConfiguration,
    pipeline_name: str = PIPELINE_NAME,
    snapshot_id: UUID = PLACEHOLDER_SNAPSHOT_ID,
    overrides: dict[str, Any] | None = None,
) -> k8s_client.V1Job:
    """The orchestrator Job (``KubernetesOrchestrator._prepare_job_manifest``) that runs the whole DAG."""
    settings = orchestrator_settings(run_config, overrides=overrides)
    pod_settings = kube_utils.apply_default_resource_requests(
        memory="400Mi", cpu="100m", pod_settings=settings.orchestrator_pod_settings or KubernetesPodSettings()
    )
    pod_settings = _with_token_secret(pod_settings, snapshot_id)
    labels = {"pipeline": kube_utils.sanitize_label_value(pipeline_name)}
    pod = manifest_utils.build_pod_manifest(
        pod_name=None,
        image_name=pipeline_image(run_config),
        command=KubernetesOrchestratorEntrypointConfiguration.get_entrypoint_command(),
        args=KubernetesOrchestratorEntrypointConfiguration.get_entrypoint_arguments(snapshot_id=snapshot_id),
        privileged=False,
        pod_settings=pod_settings,
        service_account_name=settings.service_account_name,
        labels=dict(labels),
        termination_grace_period_seconds=settings.pod_stop_grace_period,
    )
    return manifest_utils.build_job_manifest(
        job_name=_job_name(settings, pipeline_name),
        pod_template=manifest_utils.pod_template_manifest_from_pod(pod),
        backoff_limit=settings.orchestrator_job_backoff_limit,
        ttl_seconds_after_finished=settings.ttl_seconds_after_finished,
        active_deadline_seconds=settings.active_deadline_seconds,
        pod_failure_policy=settings.pod_failure_policy,
        labels=labels,
    )


def build_schedule_cron_job(
    run_config: PipelineRunConfiguration,
    cron_expression: str,
    pipeline_name: str = PIPELINE_NAME,
    snapshot_id: UUID = PLACEHOLDER_SNAPSHOT_ID,
) -> k8s_client.V1CronJob:
    """The CronJob the orchestrator creates for ``Schedule(cron_expression=...)``.

    ``run_config`` carries the schedule's orchestrator settings
    (``concurrency_policy``, ``starting_deadline_seconds``, history limits), e.g.
    configs/k8s-gpu.yaml merged with configs/schedule.yaml by :func:`merge_run_configs`.
    """
    settings = orchestrator_settings(run_config)
    job = build_orchestrator_job(run_config, pipeline_name=pipeline_name, snapshot_id=snapshot_id)
    return manifest_utils.build_cron_job_manifest(
        job_template=manifest_utils.job_template_manifest_from_job(job),
        cron_expression=cron_expression,
        successful_jobs_history_limit=settings.successful_jobs_history_limit,
        failed_jobs_history_limit=settings.failed_jobs_history_limit,
        concurrency_policy=settings.concurrency_policy,
        starting_deadline_seconds=settings.starting_deadline_seconds,
    )


def merge_run_configs(*paths: Path) -> PipelineRunConfiguration:
    """Deep-merge run config files, later ones winning (e.g. k8s-gpu.yaml + schedule.yaml)."""
    merged: dict[str, Any] = {}
    for path in paths:
        merged = recursive_update(merged, yaml.safe_load(Path(path).read_text()) or {})
    return PipelineRunConfiguration.model_validate(merged)


def pod_spec(manifest: dict[str, Any]) -> dict[str, Any]:
    """The pod spec inside a Pod, Job or CronJob manifest."""
    spec = manifest["spec"]
    if manifest["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"] if manifest["kind"] != "Pod" else spec


def drop_null_snake_case_fields(manifest: dict[str, Any]) -> list[str]:
    """Remove the null snake_case keys ZenML 0.98 leaves in a container's securityContext.

    ``manifest_utils.add_pod_settings`` merges ``container_security_context`` into
    ``V1SecurityContext(privileged=...).to_dict()``, whose keys are snake_case
    (``allow_privilege_escalation: None``, ...); the settings' camelCase keys sit
    beside them. The API server drops such unknown fields (default field
    validation "Warn"), so what it stores is this manifest without them; strict
    schema validation rejects them. Returns the paths removed.
    """
    snake_only = {k for k, v in k8s_client.V1SecurityContext.attribute_map.items() if k != v}
    removed = []
    spec = pod_spec(manifest)
    for group in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(group) or []):
            context = container.get("securityContext") or {}
            for key in [k for k, v in context.items() if v is None and k in snake_only]:
                del context[key]
                removed.append(f"{group}[{index}].securityContext.{key}")
    return removed


def to_manifest(obj: Any, drop_zenml_null_fields: bool = True) -> dict[str, Any]:
    """A kubernetes client model as the plain dict the API receives, with apiVersion/kind set.

    With ``drop_zenml_null_fields`` (default) the null snake_case keys of
    :func:`drop_null_snake_case_fields` are removed, i.e. the object as the API
    server stores it.
    """
    manifest = k8s_client.ApiClient().sanitize_for_serialization(obj)
    api_version, kind = _TYPE_META[type(obj)]
    manifest.setdefault("apiVersion", api_version)
    manifest.setdefault("kind", kind)
    if drop_zenml_null_fields:
        drop_null_snake_case_fields(manifest)
    return manifest
