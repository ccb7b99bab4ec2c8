"""Pure parts of the deployment: which version a server says it serves, the MLflow tags of a
deployment, the kustomization rendered for a version, the deployment settings."""

from __future__ import annotations

from pathlib import Path

import yaml

from drugslm_core.config import DeploymentSettings, Settings
from drugslm_core.registry.deployments import deployment_tags
from drugslm_core.serving.deployment import DeploymentPlan, render_manifests, served_version


def plan(version: str = "12") -> DeploymentPlan:
    return DeploymentPlan(model_name="drugslm", version=version, alias="champion", source="runs:/r/adapter", run_id="r",
                          base_model_name="SmolLM2-1.7B-Instruct", base_model_sha256="ab" * 32)


def test_served_version_from_header_or_model_id() -> None:
    assert served_version("drugslm/7", None) == "7"
    assert served_version("drugslm-v12", None) == "12"
    assert served_version("drugslm", "9") == "9"   # X-Model-Version wins
    assert served_version("drugslm", None) is None  # a name without a version proves nothing


def test_deployment_tags_are_namespaced_and_skip_missing_values() -> None:
    tags = deployment_tags("local", {"url": "http://127.0.0.1:8000/v1", "smoke_test": "passed", "manifests_dir": None})
    assert tags == {"deployment.local.url": "http://127.0.0.1:8000/v1", "deployment.local.smoke_test": "passed"}
    assert all(len(v) <= 5000 for v in deployment_tags("x", {"detail": "y" * 9000}).values())


def test_render_manifests_for_a_version(tmp_path: Path) -> None:
    overlay = tmp_path / "k8s" / "overlays" / "prod"
    overlay.mkdir(parents=True)
    settings = DeploymentSettings(target="production", overlay=overlay)
    rendered = render_manifests(plan("12"), "s3://b/serving/drugslm/v12/adapter/", settings, tmp_path / "build" / "v12")
    document = yaml.safe_load((tmp_path / "build" / "v12" / "kustomization.yaml").read_text())
    assert document["resources"] == ["../../k8s/overlays/prod"]  # relative: the folder can be applied from anywhere
    (generator,) = document["configMapGenerator"]
    assert generator["name"] == "drugslm-vllm-release" and generator["behavior"] == "replace"
    literals = dict(item.split("=", 1) for item in generator["literals"])
    assert literals["SERVED_MODEL_NAME"] == "drugslm-v12" and literals["MODEL_VERSION"] == "12"
    assert literals["BASE_MODEL_PATH"] == "/models/base-models/" + "ab" * 32
    assert rendered.served_name == "drugslm-v12" and "kustomization.yaml" in rendered.files
    (patch,) = document["patches"]
    assert patch["target"] == {"kind": "Deployment", "name": "drugslm-vllm"}
    assert yaml.safe_load(patch["patch"])["metadata"]["annotations"]["drugslm.io/deployed-version"] == "12"


def test_deployment_settings_from_env(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DRUGSLM_DEPLOYMENT__TARGET", "production")
    monkeypatch.setenv("DRUGSLM_DEPLOYMENT__VERSION", "4")
    settings = Settings()
    assert settings.deployment.target == "production" and settings.deployment.version == "4"
    assert settings.deployment.after_promotion is False  # on only where a config says so (local.yaml)
