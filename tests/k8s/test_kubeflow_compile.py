"""The Kubeflow option: the training pipeline compiled to a KFP v2 spec, offline.

``python -m drugslm_ops.kubeflow compile`` runs ZenML's compiler and the
``drugslm_kubeflow`` orchestrator's own ``submit_pipeline`` (ZenML's Kubeflow
orchestrator plus two fixes, src/drugslm_ops/kubeflow.py) against an in-memory stack; only
the upload to the KFP API is left out. It runs in a throw-away ZenML repository
and store (about 20 s).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("kfp", reason="kfp is not installed")

from tests.isolated_project import ROOT, isolated_project  # noqa: E402

STEPS = {
    "base-model", "ingest", "clean", "validate", "quality-gate", "build-dataset",
    "profile-dataset", "split", "finetune", "evaluate", "register", "deploy-promoted", "build-retrieval-index",
}
IMAGE = "ghcr.io/drugslm/drugslm:0.1.0"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    project, env = isolated_project(tmp_path_factory.mktemp("kubeflow"), {})
    output = project / "build" / "spec.yaml"
    result = subprocess.run(
        [sys.executable, "-m", "drugslm_ops.kubeflow", "compile", "--config", "configs/kubeflow-gpu.yaml", "-o", str(output)],
        cwd=project, env={**env, "COLUMNS": "200"}, capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    return {"spec": yaml.safe_load(output.read_text()), "stdout": result.stdout}


def executor(spec: dict[str, Any], task: str) -> dict[str, Any]:
    return spec["deploymentSpec"]["executors"][f"exec-{task}"]["container"]


def test_spec_is_kfp_v2(compiled) -> None:
    spec = compiled["spec"]
    assert spec["schemaVersion"] == "2.1.0"
    assert spec["sdkVersion"].startswith("kfp-2.")
    assert set(spec["root"]["dag"]["tasks"]) == STEPS


@pytest.mark.parametrize("task", ["finetune", "evaluate"])
def test_gpu_tasks_get_one_gpu(compiled, task: str) -> None:
    resources = executor(compiled["spec"], task)["resources"]
    assert resources["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert resources["accelerator"]["resourceCount"] == "1"
    assert resources["resourceCpuLimit"] == "4.0"
    assert resources["resourceMemoryLimit"] == "32768Mi"  # 32GiB; ZenML alone passes a float kfp rejects
    assert "nvidia.com/gpu" in compiled["stdout"]


def test_cpu_tasks_get_no_accelerator(compiled) -> None:
    for task in STEPS - {"finetune", "evaluate"}:
        assert "accelerator" not in executor(compiled["spec"], task).get("resources", {}), task


def test_tasks_run_the_zenml_step_entrypoint_in_the_pipeline_image(compiled) -> None:
    for task in STEPS:
        container = executor(compiled["spec"], task)
        assert container["image"] == IMAGE
        assert container["command"] == ["python", "-m", "zenml.entrypoints.entrypoint"]
        assert container["args"][-1] == task.replace("-", "_")


def test_dag_follows_the_pipeline(compiled) -> None:
    tasks = compiled["spec"]["root"]["dag"]["tasks"]
    upstream = {name: set(task.get("dependentTasks", [])) for name, task in tasks.items()}
    assert upstream["finetune"] == {"base-model", "split"}
    assert upstream["evaluate"] == {"finetune", "split", "build-retrieval-index"}
    assert upstream["build-retrieval-index"] == {"validate"}
    assert {"evaluate", "finetune"} <= upstream["register"]
    assert upstream["ingest"] == set()


def test_kubeflow_run_config_shares_the_k8s_settings_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    from drugslm_core.config import load_settings_file

    monkeypatch.chdir(ROOT)
    for name in [n for n in os.environ if n.startswith("DRUGSLM_")]:
        monkeypatch.delenv(name)
    kubeflow = load_settings_file(Path("configs/kubeflow-gpu.yaml"))
    kubernetes = load_settings_file(Path("configs/k8s-gpu.yaml"))
    assert json.loads(kubeflow.model_dump_json()) == json.loads(kubernetes.model_dump_json())
    assert kubeflow.training.mode == "qlora"


# --------------------------------------------------------------------------
# The settings fix (no ZenML store needed)
# --------------------------------------------------------------------------


def test_zenml_kubeflow_settings_drop_pod_settings() -> None:
    """The upstream defect src/drugslm_ops/kubeflow.py works around; when this fails, the fix can go."""
    from zenml.integrations.kubeflow.flavors.kubeflow_orchestrator_flavor import KubeflowOrchestratorSettings

    given = {"pod_settings": {"node_selectors": {"accelerator": "nvidia.com/gpu"}}}
    assert KubeflowOrchestratorSettings.model_validate(given).pod_settings.node_selectors == {}


@pytest.mark.parametrize(
    "given",
    [
        {"pod_settings": {"node_selectors": {"accelerator": "nvidia.com/gpu"}}},
        {"node_selectors": {"accelerator": "nvidia.com/gpu"}},  # the legacy field is folded in
    ],
)
def test_drugslm_kubeflow_settings_keep_pod_settings(given: dict) -> None:
    from drugslm_ops.kubeflow import DrugslmKubeflowOrchestratorConfig, DrugslmKubeflowOrchestratorSettings

    settings = DrugslmKubeflowOrchestratorSettings.model_validate(given)
    assert settings.pod_settings.node_selectors == {"accelerator": "nvidia.com/gpu"}
    assert not settings.model_extra
    config = DrugslmKubeflowOrchestratorConfig.model_validate({**given, "kubernetes_context": "ctx"})
    assert config.pod_settings.node_selectors == {"accelerator": "nvidia.com/gpu"}


def test_drugslm_kubeflow_settings_still_check_credentials() -> None:
    from drugslm_ops.kubeflow import DrugslmKubeflowOrchestratorSettings

    with pytest.raises(ValueError, match="both need to be set together"):
        DrugslmKubeflowOrchestratorSettings.model_validate({"client_username": "alice"})


def test_flavor_points_at_the_fixed_classes() -> None:
    from drugslm_ops.kubeflow import (
        FLAVOR,
        DrugslmKubeflowOrchestrator,
        DrugslmKubeflowOrchestratorConfig,
        DrugslmKubeflowOrchestratorFlavor,
    )

    flavor = DrugslmKubeflowOrchestratorFlavor()
    assert flavor.name == FLAVOR
    assert flavor.config_class is DrugslmKubeflowOrchestratorConfig
    assert flavor.implementation_class is DrugslmKubeflowOrchestrator
