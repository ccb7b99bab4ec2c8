"""Put a registered version in front of users: locally as a managed server, or on Kubernetes.

The deployment pipeline (``pipelines/deployment.py``) and the training pipeline (after a
promotion, ``deployment.after_promotion``) call these in order:

1. :func:`resolve_deployment`: ``@champion`` (or ``deployment.version``) in the MLflow
   registry, its adapter's base model by name and hash; :func:`check_base` refuses a
   version trained on another base than the one this machine (local target) has.
2. the target:

   * ``local`` (:func:`deploy_local`): (re)start ``drugslm serve`` as a managed process
     (:mod:`drugslm_core.serving.process`), wait until ready, then :func:`smoke_test` it
     through the HTTP API with the official ``openai`` client, checking that the version
     it serves is the one deployed;
   * ``production`` (:func:`deploy_production`): copy the adapter to the artifact store
     under ``<root>/serving/<model>/v<N>/adapter/`` (immutable: the same version with other
     bytes is refused, since vLLM must never see different weights under one name) and
     render a kustomization for that version on top of ``k8s/overlays/prod``
     (:func:`render_manifests`).
3. the step records the :class:`DeploymentRecord` on the MLflow version
   (:func:`drugslm_core.registry.deployments.record_deployment`) and the ZenML model version.
"""

from __future__ import annotations

import hashlib
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel

from drugslm_core.config import DeploymentSettings, Settings
from drugslm_core.modeling.base_model import BaseModelRef
from drugslm_core.registry.loading import RegisteredAdapter, check_base_matches, download_version
from drugslm_core.serving.process import ServerProcess, api_key_from_env, auth_headers, server_command

RELEASE_CONFIGMAP = "drugslm-vllm-release"
"""The ConfigMap of k8s/components/serving-vllm that names the served version."""


class NothingToDeploy(LookupError):
    """No version behind the alias (or no such version): an expected condition, one line."""


class DeploymentPlan(BaseModel):
    """The registered version to deploy and what it was trained on."""

    model_name: str
    version: str = ""
    alias: str | None = None
    """The alias it was resolved from (``None``: a version named in config)."""
    source: str = ""
    """The version's artifact URI (the adapter folder)."""
    run_id: str | None = None
    base_model_name: str = ""
    base_model_sha256: str = ""
    tags: dict[str, str] = {}
    nothing: str | None = None
    """Why there is nothing to deploy (no champion yet); the steps after it then do nothing.
    (A plan, not ``None``: ZenML hands an Optional pydantic input over as another class.)"""

    @classmethod
    def nothing_to_deploy(cls, model_name: str, reason: str) -> DeploymentPlan:
        return cls(model_name=model_name, nothing=reason)

    @property
    def served_name(self) -> str:
        """The versioned name the GPU server gives the adapter (never reused for other weights)."""
        return f"{self.model_name}-v{self.version}"


class SmokeTest(BaseModel):
    passed: bool
    detail: str
    served_model: str | None = None
    answer: str | None = None


class RenderedManifests(BaseModel):
    """A kustomization for one version (``kubectl apply -k <directory>``) and its files' text."""

    version: str
    served_name: str
    adapter_uri: str
    directory: str
    files: dict[str, str]


class DeploymentRecord(BaseModel):
    model_name: str
    version: str
    target: Literal["local", "production"]
    url: str
    deployed_at: str
    smoke_test: Literal["passed", "failed", "not run"]
    skipped: str | None = None
    """Nothing was deployed, and why (the plan's ``nothing``)."""
    smoke_detail: str = ""
    served_model: str | None = None
    adapter_uri: str | None = None
    merged_uri: str | None = None
    """Production with ``deployment.export_merged``: the merged weights' copy."""
    manifests_dir: str | None = None
    base_model_sha256: str = ""

    @classmethod
    def nothing_deployed(cls, plan: DeploymentPlan, target: Literal["local", "production"]) -> DeploymentRecord:
        return cls(model_name=plan.model_name, version="", target=target, url="", deployed_at=_now(),
                   smoke_test="not run", skipped=plan.nothing or "nothing to deploy")

    def mlflow_fields(self) -> dict[str, object]:
        return {
            "url": self.url, "smoke_test": self.smoke_test, "smoke_detail": self.smoke_detail,
            "served_model": self.served_model, "adapter_uri": self.adapter_uri, "merged_uri": self.merged_uri,
            "manifests_dir": self.manifests_dir,
        }

    def summary(self) -> str:
        where = self.manifests_dir and f"manifests {self.manifests_dir}" or self.url
        return f"{self.model_name} v{self.version} deployed to {self.target} ({where}); smoke test {self.smoke_test}: {self.smoke_detail}"


# -- 1. what to deploy -----------------------------------------------------------------------


def resolve_deployment(model_name: str, alias: str, version: str | None = None) -> DeploymentPlan:
    """The version behind ``model_name@alias`` (or ``version``) in the MLflow registry.

    Raises :class:`NothingToDeploy` when there is none, ``ValueError`` when the version does
    not name its base model's hash (it could not be checked against any base)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    wanted = f"{model_name} v{version}" if version is not None else f"{model_name}@{alias}"
    try:
        found = (client.get_model_version(model_name, str(version)) if version is not None
                 else client.get_model_version_by_alias(model_name, alias))
    except MlflowException as error:
        if error.error_code in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}:
            raise NothingToDeploy(
                f"nothing to deploy: no {wanted} in the MLflow registry at {mlflow.get_tracking_uri()} "
                f"(run `make run` until the gate promotes a version, or set deployment.version)"
            ) from None
        raise
    tags = dict(found.tags)
    if not tags.get("base_model_sha256"):
        raise ValueError(f"{model_name} v{found.version}: tag base_model_sha256 is missing; cannot check its base model")
    return DeploymentPlan(
        model_name=model_name, version=str(found.version), alias=None if version is not None else alias,
        source=found.source, run_id=found.run_id, base_model_name=tags.get("base_model_name", "?"),
        base_model_sha256=tags["base_model_sha256"], tags=tags,
    )


def check_base(plan: DeploymentPlan, base: BaseModelRef) -> None:
    """Refuse a version whose adapter was trained on another base than ``base`` (by hash)."""
    check_base_matches(RegisteredAdapter(version=plan.version, run_id=plan.run_id, adapter_dir="", tags=plan.tags),
                       base, plan.model_name)


def download_adapter(plan: DeploymentPlan, target: Path) -> Path:
    adapter = download_version(plan.model_name, version=plan.version, download_dir=target)
    return Path(adapter.adapter_dir)


def download_merged(plan: DeploymentPlan, target: Path) -> Path:
    """The version's merged weights, logged beside the adapter when it was trained with
    ``training.export_merged`` (modeling.training.export_merged); for servers without LoRA."""
    import mlflow

    from drugslm_core.registry.mlflow_registry import MERGED_ARTIFACT_PATH

    if plan.run_id is None:
        raise NothingToDeploy(f"{plan.model_name} v{plan.version} has no run: no merged weights to export")
    listed = mlflow.MlflowClient().list_artifacts(plan.run_id, MERGED_ARTIFACT_PATH)
    if not listed:
        raise NothingToDeploy(
            f"{plan.model_name} v{plan.version} has no merged weights (run {plan.run_id} logged no "
            f"'{MERGED_ARTIFACT_PATH}/'): train with training.export_merged: true, or serve the adapter"
        )
    return Path(mlflow.artifacts.download_artifacts(f"runs:/{plan.run_id}/{MERGED_ARTIFACT_PATH}", dst_path=str(target)))


# -- 2a. local target --------------------------------------------------------------------------


def write_server_settings(settings: Settings, path: Path) -> Path:
    """The resolved settings tree as a bare settings YAML the managed server is started with
    (``drugslm serve --config``), so it serves with exactly the pipeline's base model and prompt."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False))
    path.chmod(0o600)  # the tree may hold connector API keys
    return path


def deploy_local(
    plan: DeploymentPlan, settings: Settings, tracking_uri: str, pin_version: bool = False
) -> DeploymentRecord:
    """(Re)start the managed server for ``plan`` and smoke-test it.

    With ``pin_version`` the server is started with ``--version N``; otherwise it serves the
    alias (and follows it), and the smoke test checks it serves ``plan.version`` now."""
    deployment = settings.deployment
    manager = ServerProcess(deployment.state_dir)
    manager.stop()  # a restart: the new version replaces whatever this state folder served
    config = write_server_settings(settings, Path(deployment.state_dir) / "settings.yaml")
    url = f"http://{deployment.host}:{deployment.port}"
    api_key = api_key_from_env()
    manager.start(
        server_command(config, deployment.host, deployment.port, plan.version if pin_version else None,
                       plan.model_name, settings.registry.champion_alias),
        url, version=plan.version, api_key=api_key, ready_timeout_s=deployment.ready_timeout_s,
        env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri},
    )
    smoke = smoke_test(url, plan.version, api_key, deployment.smoke_prompt, deployment.smoke_max_tokens)
    return DeploymentRecord(
        model_name=plan.model_name, version=plan.version, target="local", url=f"{url}/v1", deployed_at=_now(),
        smoke_test="passed" if smoke.passed else "failed", smoke_detail=smoke.detail,
        served_model=smoke.served_model, base_model_sha256=plan.base_model_sha256,
    )


def served_version(model_id: str, header: str | None) -> str | None:
    """The version a server says it serves: the ``X-Model-Version`` header, else the trailing
    number of the model id (``drugslm/7``, ``drugslm-v7``, ``drugslm:7``)."""
    if header:
        return header.strip()
    match = re.search(r"(?:/|-v|:|@)(\d+)$", model_id)
    return match.group(1) if match else None


def smoke_test(url: str, version: str, api_key: str | None, prompt: str, max_tokens: int, timeout_s: float = 300.0) -> SmokeTest:
    """Ask the server one question through the official ``openai`` client: it must list a model,
    answer with non-empty text and serve ``version``."""
    import openai

    client = openai.OpenAI(base_url=f"{url.rstrip('/')}/v1", api_key=api_key or "no-key-configured",
                           timeout=timeout_s, max_retries=0, default_headers=auth_headers(api_key))
    try:
        models = [model.id for model in client.models.list().data]
        if not models:
            return SmokeTest(passed=False, detail="GET /v1/models listed no model")
        raw = client.chat.completions.with_raw_response.create(
            model=models[0], messages=[{"role": "user", "content": prompt}], max_tokens=max_tokens, temperature=0.0,
        )
        completion = raw.parse()
    except openai.OpenAIError as error:
        return SmokeTest(passed=False, detail=f"{type(error).__name__}: {error}"[:500])
    answer = (completion.choices[0].message.content or "").strip() if completion.choices else ""
    serving = served_version(completion.model, raw.headers.get("x-model-version"))
    if serving != str(version):
        return SmokeTest(passed=False, served_model=completion.model, answer=answer,
                         detail=f"the server answers as {completion.model!r} (version {serving}), not version {version}")
    if not answer:
        return SmokeTest(passed=False, served_model=completion.model, answer=answer, detail="empty answer")
    tokens = completion.usage.completion_tokens if completion.usage else "?"
    return SmokeTest(passed=True, served_model=completion.model, answer=answer,
                     detail=f"{completion.model} answered {tokens} tokens: {answer[:120]!r}")


# -- 2b. production target ---------------------------------------------------------------------


def adapter_uri(root: str, model_name: str, version: str, kind: str = "adapter") -> str:
    return f"{root.rstrip('/')}/serving/{model_name}/v{version}/{kind}"


def publish_adapter(
    adapter_dir: Path, root: str, model_name: str, version: str, fs: Any | None = None, kind: str = "adapter"
) -> str:
    """Copy the adapter folder to ``<root>/serving/<model>/v<N>/adapter/`` (``kind="merged"``: the
    merged weights to ``.../merged/``) with fsspec (``fs``: the artifact store's filesystem, e.g.
    its s3fs with endpoint and credentials; default: from the URL). A version already published
    with the same bytes is left as is; with other bytes it is an error: a versioned path, like a
    versioned served name, always means the same weights."""
    import fsspec

    target = adapter_uri(root, model_name, version, kind)
    if fs is None:
        fs, _ = fsspec.core.url_to_fs(target)
    files = sorted(path for path in Path(adapter_dir).rglob("*") if path.is_file())
    if not files:
        raise ValueError(f"{adapter_dir}: the adapter folder of {model_name} v{version} is empty")
    for path in files:
        remote = f"{target}/{path.relative_to(adapter_dir).as_posix()}"
        if fs.exists(remote):
            if _sha256(fs.cat_file(remote)) != _sha256(path.read_bytes()):
                raise ValueError(
                    f"{remote} already holds different bytes for {model_name} v{version}: "
                    "a published version is immutable (register a new version instead)"
                )
            continue
        parent = remote.rsplit("/", 1)[0]
        fs.makedirs(parent, exist_ok=True)
        fs.put_file(str(path), remote)
    return target + "/"


def render_manifests(plan: DeploymentPlan, uri: str, deployment: DeploymentSettings, out_dir: Path) -> RenderedManifests:
    """A kustomization for ``plan``'s version on top of ``deployment.overlay``: it replaces the
    release ConfigMap of k8s/components/serving-vllm (served name ``<model>-v<N>``, adapter URI,
    base hash on the cache volume), whose new name hash rolls the vLLM pods."""
    out_dir.mkdir(parents=True, exist_ok=True)
    overlay = os.path.relpath(Path(deployment.overlay).resolve(), out_dir.resolve())
    literals = {
        "MODEL_NAME": plan.model_name,
        "MODEL_VERSION": plan.version,
        "SERVED_MODEL_NAME": plan.served_name,
        "ADAPTER_URI": uri,
        "BASE_MODEL_NAME": plan.base_model_name,
        "BASE_MODEL_SHA256": plan.base_model_sha256,
        "BASE_MODEL_PATH": f"{deployment.base_models_mount.rstrip('/')}/{plan.base_model_sha256}",
    }
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [overlay],
        "configMapGenerator": [
            {"name": RELEASE_CONFIGMAP, "namespace": deployment.namespace, "behavior": "replace",
             "literals": [f"{k}={v}" for k, v in literals.items()]}
        ],
        # On the vLLM Deployment only (not its pod template: the ConfigMap's new hash rolls the pods;
        # other workloads of the overlay are left alone).
        "patches": [{
            "target": {"kind": "Deployment", "name": "drugslm-vllm"},
            "patch": yaml.safe_dump({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "drugslm-vllm", "namespace": deployment.namespace, "annotations": {
                    "drugslm.io/deployed-version": plan.version, "drugslm.io/deployed-at": _now()}},
            }, sort_keys=False),
        }],
    }
    header = (
        f"# Rendered by the deployment pipeline for {plan.model_name} v{plan.version} "
        f"(served as {plan.served_name}).\n# Apply: kubectl apply -k {out_dir}\n"
    )
    text = header + yaml.safe_dump(kustomization, sort_keys=False)
    (out_dir / "kustomization.yaml").write_text(text)
    return RenderedManifests(version=plan.version, served_name=plan.served_name, adapter_uri=uri,
                             directory=str(out_dir), files={"kustomization.yaml": text})


def deploy_production(
    plan: DeploymentPlan, deployment: DeploymentSettings, root: str, download_dir: Path, fs: Any | None = None
) -> tuple[DeploymentRecord, RenderedManifests]:
    """Publish the adapter under its versioned path and render the version's manifests."""
    # Everything is fetched before anything is published: a missing export fails with nothing half-done.
    merged = download_merged(plan, download_dir / "merged") if deployment.export_merged else None
    uri = _with_protocol(publish_adapter(download_adapter(plan, download_dir), root, plan.model_name, plan.version, fs), fs)
    merged_uri = None
    if merged is not None:  # for a server without LoRA support (the GPU manifests use the adapter)
        merged_uri = _with_protocol(publish_adapter(merged, root, plan.model_name, plan.version, fs, "merged"), fs)
    manifests = render_manifests(plan, uri, deployment, Path(deployment.manifests_dir) / f"v{plan.version}")
    record = DeploymentRecord(
        model_name=plan.model_name, version=plan.version, target="production",
        url=f"http://drugslm-vllm:8000/v1 (model {plan.served_name})", deployed_at=_now(), smoke_test="not run",
        smoke_detail="rendered only: apply with kubectl apply -k, then the pods' readiness is the check",
        served_model=plan.served_name, adapter_uri=uri, merged_uri=merged_uri, manifests_dir=manifests.directory,
        base_model_sha256=plan.base_model_sha256,
    )
    return record, manifests


def _with_protocol(uri: str, fs: Any | None) -> str:
    """s3fs returns paths without ``s3://``: put it back so the pods get a URL."""
    if fs is not None and "://" not in uri and getattr(fs, "protocol", None):
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        return f"{protocol}://{uri}" if protocol not in {"file", "local"} else uri
    return uri


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
