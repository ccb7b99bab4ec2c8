"""The production target of the deployment: adapter to S3 (moto's server on loopback), manifests
for that version rendered with kustomize and checked against the Kubernetes schemas.

MLflow is a SQLite registry in tmp_path holding a tiny real LoRA adapter as @champion.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

import boto3
import httpx
import mlflow
import pytest
import yaml

from drugslm_core.config import DeploymentSettings
from drugslm_core.modeling.base_model import BaseModelRef
from drugslm_core.registry.deployments import record_deployment
from drugslm_core.serving.deployment import (
    NothingToDeploy,
    check_base,
    deploy_production,
    publish_adapter,
    resolve_deployment,
)
from tests.registered_champion import register_champion
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MODEL = "drugslm-deploy-prod"
BUCKET = "drugslm-artifacts"
KUBECTL = shutil.which("kubectl")



@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """moto's S3 server on loopback with one bucket; yields (endpoint, s3fs filesystem, boto3 client)."""
    import s3fs

    port = free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("w")
    server = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{endpoint}/moto-api/", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        credentials = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}
        client = boto3.client("s3", endpoint_url=endpoint, **credentials)
        client.create_bucket(Bucket=BUCKET)
        fs = s3fs.S3FileSystem(key="testing", secret="testing", skip_instance_cache=True,
                               client_kwargs={"endpoint_url": endpoint, "region_name": "us-east-1"})
        yield endpoint, fs, client
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()


@pytest.fixture(scope="module")
def champion(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    version, adapter, base = register_champion(uri, MODEL, root)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    yield version, adapter, base, root
    mlflow.set_tracking_uri(previous)


@pytest.fixture(scope="module")
def deployed(s3, champion, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    _, fs, _ = s3
    plan = resolve_deployment(MODEL, "champion")
    work = tmp_path_factory.mktemp("deploy")
    settings = DeploymentSettings(target="production", manifests_dir=work / "manifests", overlay=ROOT / "k8s/overlays/prod")
    record, manifests = deploy_production(plan, settings, f"s3://{BUCKET}/zenml", work / "download", fs)
    return plan, record, manifests


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_adapter_lands_in_s3_under_the_versioned_path(s3, champion, deployed) -> None:
    _, _, client = s3
    version, adapter, _, _ = champion
    plan, record, _ = deployed
    assert plan.version == version and plan.alias == "champion"
    prefix = f"zenml/serving/{MODEL}/v{version}/adapter/"
    assert record.adapter_uri == f"s3://{BUCKET}/{prefix}"
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    stored = {item["Key"].removeprefix(prefix): item["Key"] for item in listed}
    local = {path.relative_to(adapter).as_posix(): path for path in adapter.rglob("*") if path.is_file()}
    assert set(stored) == set(local) and {"adapter_config.json", "adapter_model.safetensors"} <= set(stored)
    for name, key in stored.items():
        body = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert _sha(body) == _sha(local[name].read_bytes()), name


def test_a_published_version_is_immutable(s3, champion, deployed, tmp_path: Path) -> None:
    _, fs, client = s3
    version, adapter, _, _ = champion
    root = f"s3://{BUCKET}/zenml"
    # The same bytes again: accepted, nothing rewritten.
    assert publish_adapter(adapter, root, MODEL, version, fs) == deployed[1].adapter_uri
    other = tmp_path / "other"
    shutil.copytree(adapter, other)
    (other / "adapter_model.safetensors").write_bytes(b"other weights")
    with pytest.raises(ValueError, match="immutable"):
        publish_adapter(other, root, MODEL, version, fs)
    key = f"zenml/serving/{MODEL}/v{version}/adapter/adapter_model.safetensors"
    assert client.get_object(Bucket=BUCKET, Key=key)["Body"].read() == (adapter / "adapter_model.safetensors").read_bytes()


@pytest.mark.skipif(KUBECTL is None, reason="kubectl not on PATH: the rendered kustomization cannot be built")
def test_rendered_manifests_name_the_version(champion, deployed) -> None:
    import kubernetes_validate

    version, _, base, _ = champion
    plan, record, manifests = deployed
    assert manifests.version == version and manifests.served_name == f"{MODEL}-v{version}"
    assert record.manifests_dir == manifests.directory
    assert (Path(manifests.directory) / "kustomization.yaml").read_text() == manifests.files["kustomization.yaml"]
    rendered = subprocess.run([KUBECTL, "kustomize", manifests.directory], capture_output=True, text=True, check=True).stdout
    objects = [doc for doc in yaml.safe_load_all(rendered) if doc]
    deployment = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "drugslm-vllm")
    pod = deployment["spec"]["template"]["spec"]
    release_name = pod["containers"][0]["envFrom"][0]["configMapRef"]["name"]
    releases = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("drugslm-vllm-release")]
    assert [r["metadata"]["name"] for r in releases] == [release_name]  # replaced, not added
    data = releases[0]["data"]
    assert data["MODEL_VERSION"] == version
    assert data["SERVED_MODEL_NAME"] == f"{MODEL}-v{version}"
    assert data["ADAPTER_URI"] == f"s3://{BUCKET}/zenml/serving/{MODEL}/v{version}/adapter/"
    assert data["BASE_MODEL_SHA256"] == base.sha256 and data["BASE_MODEL_PATH"] == f"/models/base-models/{base.sha256}"
    args = pod["containers"][0]["args"]
    assert args[args.index("--lora-modules") + 1] == "$(SERVED_MODEL_NAME)=/adapters/$(SERVED_MODEL_NAME)"
    assert pod["initContainers"][0]["envFrom"][0]["configMapRef"]["name"] == release_name
    assert deployment["metadata"]["annotations"]["drugslm.io/deployed-version"] == version
    for obj in (deployment, releases[0]):
        for k8s_version in ("1.30.0", "1.33.0"):
            kubernetes_validate.validate(obj, k8s_version, strict=True)
    # The CPU server of the base stays beside it.
    assert any(o["kind"] == "Deployment" and o["metadata"]["name"] == "drugslm-serving" for o in objects)


def test_deployment_is_recorded_on_the_mlflow_version(champion, deployed) -> None:
    version = champion[0]
    _, record, _ = deployed
    record_deployment(record.model_name, record.version, record.target, record.deployed_at, record.mlflow_fields())
    tags = mlflow.MlflowClient().get_model_version(MODEL, version).tags
    assert tags["deployment.production.adapter_uri"] == record.adapter_uri
    assert tags["deployment.production.smoke_test"] == "not run"
    assert tags["deployment.production.at"] == record.deployed_at
    assert tags["deployment.last"] == f"production {record.deployed_at}"


def test_no_champion_is_one_clear_error(champion) -> None:
    with pytest.raises(NothingToDeploy, match=r"nothing to deploy: no drugslm-nobody@champion .*make run"):
        resolve_deployment("drugslm-nobody", "champion")
    with pytest.raises(NothingToDeploy, match="no drugslm-deploy-prod v99"):
        resolve_deployment(MODEL, "champion", version="99")


def test_another_base_is_refused(champion) -> None:
    plan = resolve_deployment(MODEL, "champion")
    other = BaseModelRef(name="other", path="/nowhere", sha256="0" * 64, source="test")
    with pytest.raises(RuntimeError, match="was trained on base model"):
        check_base(plan, other)
    check_base(plan, champion[2])  # its own base passes


def test_publish_to_a_local_folder(champion, tmp_path: Path) -> None:
    version, adapter, _, _ = champion
    uri = publish_adapter(adapter, str(tmp_path / "store"), MODEL, version)
    assert (Path(uri) / "adapter_config.json").read_bytes() == (adapter / "adapter_config.json").read_bytes()


def test_merged_export_needs_merged_weights_on_the_version(s3, champion, tmp_path: Path) -> None:
    _, fs, _ = s3
    plan = resolve_deployment(MODEL, "champion")
    settings = DeploymentSettings(target="production", export_merged=True, manifests_dir=tmp_path / "m",
                                  overlay=ROOT / "k8s/overlays/prod")
    with pytest.raises(NothingToDeploy, match="no merged weights .*training.export_merged"):
        deploy_production(plan, settings, f"s3://{BUCKET}/zenml", tmp_path / "download", fs)
