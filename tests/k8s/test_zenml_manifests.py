"""What ZenML's Kubernetes orchestrator would submit, built offline and schema-checked.

``configs/k8s-gpu.yaml`` (the training run on the Kubernetes stack) and
``configs/schedule.yaml`` (weekly retraining) are turned into the Job of the
``finetune`` step, the Job of a CPU step, the orchestrator Job and the
schedule's CronJob with ZenML 0.98's own builders
(``zenml.integrations.kubernetes.manifest_utils``, via ``src/drugslm_ops/k8s_manifests.py``)
and validated strictly against the Kubernetes OpenAPI schemas. No cluster, no
ZenML server and, except for the ``schedule`` CLI tests (which use a temporary
ZenML config and project directory), no ZenML store is involved.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed")
pytest.importorskip("zenml.integrations.kubernetes.manifest_utils", reason="zenml[kubernetes] is not installed")

from kubernetes.utils import parse_quantity  # noqa: E402
from typer.testing import CliRunner  # noqa: E402
from zenml.integrations.kubernetes import kube_utils  # noqa: E402

from drugslm_ops import k8s_manifests as km  # noqa: E402
from drugslm_ops import schedules  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
RUN_CONFIG = REPO_ROOT / "configs" / "k8s-gpu.yaml"
SCHEDULE_CONFIG = REPO_ROOT / "configs" / "schedule.yaml"
K8S_VERSIONS = ("1.30.0", "1.33.0")
IMAGE = "ghcr.io/drugslm/drugslm:0.1.0"
GPU = "nvidia.com/gpu"


@pytest.fixture(scope="module")
def run_config():
    return km.load_run_config(RUN_CONFIG)


@pytest.fixture(scope="module")
def manifests(run_config) -> dict[str, dict[str, Any]]:
    merged = km.merge_run_configs(RUN_CONFIG, SCHEDULE_CONFIG)
    return {
        "Job/finetune": km.to_manifest(km.build_step_job(run_config, "finetune")),
        "Job/ingest": km.to_manifest(km.build_step_job(run_config, "ingest")),
        "Job/evaluate": km.to_manifest(km.build_step_job(run_config, "evaluate")),
        "Job/orchestrator": km.to_manifest(km.build_orchestrator_job(run_config)),
        "CronJob/schedule": km.to_manifest(km.build_schedule_cron_job(merged, merged.schedule.cron_expression)),
    }


def pod_spec(manifest: dict[str, Any]) -> dict[str, Any]:
    return km.pod_spec(manifest)


def pod_template(manifest: dict[str, Any]) -> dict[str, Any]:
    spec = manifest["spec"]["jobTemplate"]["spec"] if manifest["kind"] == "CronJob" else manifest["spec"]
    return spec["template"]


def main_container(manifest: dict[str, Any]) -> dict[str, Any]:
    (container,) = pod_spec(manifest)["containers"]
    assert container["name"] == "main"
    return container


# --------------------------------------------------------------------------
# configs/k8s-gpu.yaml is a valid ZenML run config and a valid drugslm settings tree
# --------------------------------------------------------------------------


def test_k8s_gpu_config_is_a_zenml_run_config(run_config) -> None:
    assert set(run_config.settings) == {"docker", "orchestrator"}
    assert km.pipeline_image(run_config) == IMAGE  # skip_build + parent_image
    finetune = run_config.steps["finetune"]
    assert set(finetune.settings) == {"resources", "orchestrator"}
    resources = km.step_resource_settings(run_config, "finetune")
    assert resources.gpu_count == 1 and resources.cpu_count == 4
    assert km.orchestrator_settings(run_config).service_account_name == "zenml-orchestrator"


def test_k8s_gpu_config_is_drugslm_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from drugslm_core.config import load_settings_file

    for name in [n for n in os.environ if n.startswith("DRUGSLM_")]:
        monkeypatch.delenv(name)
    settings = load_settings_file(RUN_CONFIG)
    assert settings.base_model.source == "HuggingFaceTB/SmolLM2-1.7B-Instruct"
    assert settings.training.compute_dtype == "bfloat16"
    assert settings.registry.model_name == "drugslm"


def test_resource_settings_agree_with_pod_resources(run_config) -> None:
    """ZenML 0.98's Kubernetes orchestrator ignores ResourceSettings: the pod settings must say the same."""
    requests, limits, _ = kube_utils.convert_resource_settings_to_k8s_format(
        km.step_resource_settings(run_config, "finetune")
    )
    pod_resources = km.orchestrator_settings(run_config, "finetune").pod_settings.resources
    for name, quantity in requests.items():
        assert parse_quantity(pod_resources["requests"][name]) == parse_quantity(quantity), name
    assert parse_quantity(pod_resources["limits"][GPU]) == parse_quantity(limits[GPU])


# --------------------------------------------------------------------------
# Schema validation of what ZenML builds
# --------------------------------------------------------------------------


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("name", ["Job/finetune", "Job/evaluate", "Job/ingest", "Job/orchestrator", "CronJob/schedule"])
def test_zenml_manifest_schema_valid(manifests, name: str, version: str, k8s_stats: dict) -> None:
    manifest = manifests[name]
    try:
        kubernetes_validate.validate(manifest, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = "/".join(str(p) for p in exc.path)
        pytest.fail(f"{name} invalid for Kubernetes {version} at '{path}': {exc.message}")
    k8s_stats["validated"][version] += 1
    k8s_stats["zenml_generated"][version] += 1
    k8s_stats["zenml_objects"].add(name)


def test_only_zenml_null_snake_case_keys_are_dropped(run_config) -> None:
    """ZenML 0.98 merges container_security_context into a snake_case dict; only its null keys go."""
    raw = km.to_manifest(km.build_step_job(run_config, "finetune"), drop_zenml_null_fields=False)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(raw, K8S_VERSIONS[-1], strict=True)
    removed = km.drop_null_snake_case_fields(raw)
    assert "containers[0].securityContext.allow_privilege_escalation" in removed
    context = raw["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    assert context == {
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    kubernetes_validate.validate(raw, K8S_VERSIONS[-1], strict=True)


# --------------------------------------------------------------------------
# The finetune and evaluate steps land on the GPU pool; the other steps do not
# --------------------------------------------------------------------------


@pytest.mark.parametrize("step", ["finetune", "evaluate"])
def test_gpu_step_jobs_target_the_gpu_pool(manifests, step: str) -> None:
    job = manifests[f"Job/{step}"]
    spec = pod_spec(job)
    container = main_container(job)
    assert container["image"] == IMAGE
    assert container["args"][-2:] == ["--step_name", step]
    assert container["resources"]["limits"][GPU] == "1"
    assert container["resources"]["requests"][GPU] == "1"
    assert spec["nodeSelector"] == {"drugslm.io/pool": "gpu"}
    assert {"key": GPU, "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    shm = [m for m in container["volumeMounts"] if m["mountPath"] == "/dev/shm"]
    assert len(shm) == 1 and volumes[shm[0]["name"]]["emptyDir"]["medium"] == "Memory"
    assert spec["serviceAccountName"] == "zenml-step"
    assert spec["automountServiceAccountToken"] is False
    annotations = pod_template(job)["metadata"]["annotations"]
    assert annotations["karpenter.sh/do-not-disrupt"] == "true"
    assert annotations["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false"


def test_cpu_steps_stay_off_the_gpu_pool(manifests) -> None:
    job = manifests["Job/ingest"]
    spec = pod_spec(job)
    resources = main_container(job)["resources"]
    assert GPU not in resources["requests"] and GPU not in resources.get("limits", {})
    assert "nodeSelector" not in spec and "tolerations" not in spec and "volumes" not in spec
    assert spec["serviceAccountName"] == "zenml-step"
    assert "annotations" not in pod_template(job)["metadata"]


@pytest.mark.parametrize("name", ["Job/finetune", "Job/evaluate", "Job/ingest", "Job/orchestrator", "CronJob/schedule"])
def test_zenml_pods_security(manifests, name: str) -> None:
    container = main_container(manifests[name])
    context = container["securityContext"]
    assert context["runAsNonRoot"] is True and context["privileged"] is False
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind]), f"{name}: {kind}"
    token = [e for e in container["env"] if e["name"] == "ZENML_STORE_API_TOKEN"]
    assert token and "value" not in token[0] and token[0]["valueFrom"]["secretKeyRef"]["key"]


# --------------------------------------------------------------------------
# Scheduled retraining: the CronJob
# --------------------------------------------------------------------------


def test_schedule_config_is_a_zenml_run_config_fragment() -> None:
    fragment = km.load_run_config(SCHEDULE_CONFIG)
    assert fragment.schedule.name == "drugslm-weekly-retrain"
    assert fragment.schedule.cron_expression == "0 3 * * 1"


def test_schedule_cron_job(manifests) -> None:
    cron = manifests["CronJob/schedule"]
    assert cron["spec"]["schedule"] == "0 3 * * 1"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert cron["spec"]["startingDeadlineSeconds"] == 3600
    assert cron["spec"]["successfulJobsHistoryLimit"] == 3 and cron["spec"]["failedJobsHistoryLimit"] == 3
    spec = pod_spec(cron)
    assert spec["serviceAccountName"] == "zenml-orchestrator"
    assert spec["restartPolicy"] == "Never"
    container = main_container(cron)
    assert container["command"][-1] == "zenml.integrations.kubernetes.orchestrators.kubernetes_orchestrator_entrypoint"
    assert "nodeSelector" not in spec  # the orchestrator pod runs on the CPU nodes


def test_schedule_render_cli(tmp_path: Path, k8s_stats: dict) -> None:
    out = tmp_path / "cronjob.yaml"
    result = CliRunner().invoke(
        schedules.app,
        ["render", "--config", str(RUN_CONFIG), "--schedule-config", str(SCHEDULE_CONFIG),
         "--cron", "30 2 * * 0", "-o", str(out)],
    )
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert text.startswith("# CronJob for schedule 'drugslm-weekly-retrain'")
    (cron,) = [doc for doc in yaml.safe_load_all(text) if doc]
    assert cron["kind"] == "CronJob" and cron["spec"]["schedule"] == "30 2 * * 0"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(cron, version, strict=True)
        k8s_stats["validated"][version] += 1
        k8s_stats["zenml_generated"][version] += 1
    k8s_stats["zenml_objects"].add("CronJob/rendered")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cron", "0 3 * *"], "must have 5 fields"),
        (["--schedule-config", "no/such/schedule.yaml"], "not found"),
    ],
)
def test_schedule_render_rejects(args: list[str], message: str) -> None:
    result = CliRunner().invoke(schedules.app, ["render", "--config", str(RUN_CONFIG), *args])
    assert result.exit_code != 0
    assert message in result.output


def test_schedule_rejects_unknown_concurrency_policy(tmp_path: Path) -> None:
    bad = tmp_path / "schedule.yaml"
    document = yaml.safe_load(SCHEDULE_CONFIG.read_text())
    document["settings"]["orchestrator"]["concurrency_policy"] = "forbid"
    bad.write_text(yaml.safe_dump(document))
    result = CliRunner().invoke(schedules.app, ["render", "--config", str(RUN_CONFIG), "--schedule-config", str(bad)])
    assert result.exit_code != 0 and "Allow, Forbid, Replace" in result.output


# --------------------------------------------------------------------------
# The `drugslm schedule` command group, on a throw-away ZenML store
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def zenml_sandbox(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A copy of the project's sources (no .zen) and an empty ZENML_CONFIG_PATH: the default local stack."""
    project = tmp_path_factory.mktemp("project")
    for name in ("configs", "pipelines", "steps", "materializers"):
        shutil.copytree(REPO_ROOT / name, project / name, ignore=shutil.ignore_patterns("__pycache__"))
    env = {
        **os.environ,
        "ZENML_CONFIG_PATH": str(tmp_path_factory.mktemp("zenml-config")),
        "ZENML_ANALYTICS_OPT_IN": "false",
        "ZENML_AUTO_OPEN_DASHBOARD": "false",
        "ZENML_ENABLE_RICH_TRACEBACK": "false",
        "GX_ANALYTICS_ENABLED": "false",
        "PYTHONPATH": str(project),
        "COLUMNS": "200",
    }
    env.pop("ZENML_REPOSITORY_PATH", None)
    return project, env


SANDBOX_SCRIPT = """
from drugslm_core.cli import app


def drugslm(*args):
    try:
        app(list(args), prog_name="drugslm")
    except SystemExit as exit_:
        return exit_.code
    return 0


print("CREATE_RC", drugslm("schedule", "create"), flush=True)
print("LIST_RC", drugslm("schedule", "list"), flush=True)
from pipelines.training import training_pipeline

pipeline = training_pipeline.with_options(config_path="configs/k8s-gpu.yaml")
print("WITH_OPTIONS", sorted(pipeline.configuration.settings), pipeline.configuration.settings["docker"].parent_image)
"""


@pytest.fixture(scope="module")
def sandbox_run(zenml_sandbox) -> subprocess.CompletedProcess:
    """One process (one ZenML store initialisation): `drugslm schedule create`, `... list`, with_options."""
    project, env = zenml_sandbox
    (project / "sandbox_check.py").write_text(SANDBOX_SCRIPT)  # a file: ZenML's source root is its folder
    return subprocess.run(
        [sys.executable, "sandbox_check.py"], cwd=project, env=env,
        capture_output=True, text=True, timeout=300, check=False,
    )


def test_schedule_create_refuses_the_local_orchestrator(sandbox_run) -> None:
    output = sandbox_run.stdout + sandbox_run.stderr
    assert "CREATE_RC 2" in sandbox_run.stdout, output[-4000:]
    assert "does not support schedules" in " ".join(sandbox_run.stderr.split()), output[-4000:]


def test_schedule_list_on_an_empty_store(sandbox_run) -> None:
    assert "no schedules\nLIST_RC 0" in sandbox_run.stdout, (sandbox_run.stdout + sandbox_run.stderr)[-4000:]


def test_k8s_gpu_config_loads_through_with_options(sandbox_run) -> None:
    assert f"WITH_OPTIONS ['docker', 'orchestrator'] {IMAGE}" in sandbox_run.stdout, sandbox_run.stderr[-4000:]


def test_schedule_command_needs_the_repository_root(tmp_path: Path) -> None:
    """Outside the repository the run config is missing: one line saying where to run it (``list``
    and ``delete`` need only the ZenML store, not the repository)."""
    result = subprocess.run(
        [sys.executable, "-m", "drugslm_core.cli", "schedule", "render"], cwd=tmp_path,
        capture_output=True, text=True, timeout=60, check=False, env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 2
    assert "run from the repository root" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr


def test_core_library_never_imports_zenml() -> None:
    offenders = []
    for path in (REPO_ROOT / "src" / "drugslm_core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(REPO_ROOT)}: {n}" for n in names if n.split(".")[0] == "zenml"]
    assert not offenders
