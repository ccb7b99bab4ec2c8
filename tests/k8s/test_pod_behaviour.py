"""What the pods will do, beyond their schemas: code download, working directory, writable paths.

Two layers, both without a cluster or the image:

* ZenML 0.98's own functions decide, from the run configs, whether a submission uploads
  a code archive (``build_utils.should_upload_code``) and whether the step pod will
  download it (``BaseEntrypointConfiguration.should_download_code``);
* pod emulation (``tests/k8s/podsim.py``): the container's command and arguments run
  locally as the pod's uid/gid, in a throw-away root with the image's file layout
  (docker/Dockerfile), read-only where ``readOnlyRootFilesystem`` is set, with only
  the declared writable mounts and the container's env: the step entrypoint up to
  loading the step, the serving command up to resolving its base model.

On the settings before issue 19 the step pod fails in ``prepare_code_environment``
(it unpacks the uploaded archive into ``/app/code``, which uid 10001 cannot create),
and the serving container resolves SmolLM2-135M while the champion of a ``k8s-gpu``
run was trained on SmolLM2-1.7B.
"""

from __future__ import annotations

import json
import shutil
import types
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("zenml.integrations.kubernetes.manifest_utils", reason="zenml[kubernetes] is not installed")

from zenml.config import DockerSettings  # noqa: E402
from zenml.config.build_configuration import BuildConfiguration  # noqa: E402
from zenml.pipelines import build_utils  # noqa: E402

from drugslm_ops import k8s_manifests as km  # noqa: E402
from tests.k8s import podsim, rendered  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
K8S_RUN_CONFIG = REPO_ROOT / "configs" / "k8s-gpu.yaml"
RUN_CONFIGS = [K8S_RUN_CONFIG, REPO_ROOT / "configs" / "kubeflow-gpu.yaml"]
STEPS = ("finetune", "ingest", "evaluate")

CAN_EMULATE, WHY_NOT = podsim.available()
needs_emulation = pytest.mark.skipif(not CAN_EMULATE, reason=WHY_NOT)


def docker_settings(run_config_path: Path) -> DockerSettings:
    config = km.load_run_config(run_config_path)
    return DockerSettings.model_validate(km._settings_dict(config.settings, "docker"))


def submission_facts(run_config_path: Path) -> tuple[bool, bool]:
    """(code uploaded at submission, step pods may fetch from a code repository), per ZenML 0.98.

    The build of a ``skip_build`` run is the parent image; it "contains code" exactly when
    ``BuildConfiguration.should_include_files`` says so (build_utils.create_pipeline_build).
    ``get_docker_settings`` reads each step's Docker settings; every step inherits the
    pipeline-level ones here (no step sets its own).
    """
    settings = docker_settings(run_config_path)
    contains_code = BuildConfiguration(key="orchestrator", settings=settings).should_include_files(
        code_repository=None
    )
    steps = {name: types.SimpleNamespace(config=types.SimpleNamespace(docker_settings=settings)) for name in STEPS}
    snapshot = types.SimpleNamespace(step_configurations=steps, is_dynamic=False)
    build = types.SimpleNamespace(contains_code=contains_code)
    uploaded = any(
        build_utils.should_upload_code(snapshot=snapshot, build=build, can_download_from_code_repository=repo)
        for repo in (False, True)
    )
    return uploaded, build_utils.requires_download_from_code_repository(snapshot=snapshot)


@pytest.mark.parametrize("run_config_path", RUN_CONFIGS, ids=lambda p: p.name)
def test_zenml_uploads_no_code_and_pods_download_none(run_config_path: Path) -> None:
    settings = docker_settings(run_config_path)
    assert settings.skip_build and settings.parent_image, "the prebuilt image of docker/Dockerfile runs as-is"
    uploaded, from_repo = submission_facts(run_config_path)
    assert not uploaded, (
        f"{run_config_path.name}: ZenML would archive the code at submission and every step pod would "
        "unpack it into /app/code (root-owned, pod user uid 10001): set "
        "allow_download_from_artifact_store: false (the image holds the code)"
    )
    assert not from_repo, f"{run_config_path.name}: step pods would clone a code repository into /app/code"
    # What the step entrypoint decides for a snapshot of such a run (no code_path stored).
    entrypoint = types.SimpleNamespace(
        snapshot=types.SimpleNamespace(
            code_path=None, code_reference=None,
            pipeline_configuration=types.SimpleNamespace(docker_settings=settings),
        ),
        docker_settings=settings,
    )
    from zenml.entrypoints.base_entrypoint_configuration import BaseEntrypointConfiguration

    assert BaseEntrypointConfiguration.should_download_code.fget(entrypoint) is False


def test_image_declares_app_as_zenml_source_root() -> None:
    layout = podsim.parse_dockerfile()
    assert layout.workdir == "/app"
    assert layout.env.get("ZENML_CUSTOM_SOURCE_ROOT") == layout.workdir
    assert layout.user == (10001, 10001)
    copied = {source for sources, _ in layout.copies for source in sources}
    assert {"src", "steps", "pipelines", "materializers", "configs"} <= copied  # src: drugslm_core and drugslm_ops


def _step_source(step_name: str) -> str:
    import steps

    return getattr(steps, step_name).resolve().import_path


@needs_emulation
@pytest.mark.parametrize("step_name", ["finetune", "ingest"])
def test_step_pod_starts_and_loads_its_step_as_uid_10001(step_name: str, tmp_path: Path) -> None:
    run_config = km.load_run_config(K8S_RUN_CONFIG)
    job = km.to_manifest(km.build_step_job(run_config, step_name))
    spec = km.pod_spec(job)
    (container,) = spec["containers"]
    assert container["command"] == ["python", "-m", "zenml.entrypoints.entrypoint"]
    uploaded, _ = submission_facts(K8S_RUN_CONFIG)
    layout = podsim.parse_dockerfile()
    env = {**layout.env, **podsim.container_env(container, {})}
    must_write = {"HOME (ZenML global config)": env["HOME"], "TMPDIR": env.get("TMPDIR", "/tmp"),
                  "HF_HOME (model cache)": env["HF_HOME"]}
    if any(m["mountPath"] == "/dev/shm" for m in container.get("volumeMounts") or []):
        must_write["/dev/shm"] = "/dev/shm"

    podsim_dir = tmp_path / "podsim"
    (podsim_dir / "submitted" / "steps").mkdir(parents=True)
    (podsim_dir / "submitted" / "steps" / "__init__.py").write_text("")
    shutil.copy(Path(__file__).with_name("pod_step_driver.py"), podsim_dir / "driver.py")
    facts = {
        "code_uploaded": uploaded,
        "submitted_root": "/podsim/submitted",
        "docker_settings": docker_settings(K8S_RUN_CONFIG).model_dump(exclude_unset=True),
        "step_source": _step_source(step_name),
        "must_write": must_write,
    }
    workdir = tmp_path / "pod"
    workdir.mkdir()
    run = podsim.run_container(
        spec, container, ["python", "/podsim/driver.py", *container["args"]], workdir,
        extra_env={"PODSIM_SNAPSHOT": json.dumps(facts), "ZENML_ANALYTICS_OPT_IN": "false"},
        extra_ro_binds={"/podsim": podsim_dir}, layout=layout,
    )
    lines = [line for line in run.stdout.splitlines() if line.startswith("PODSIM ")]
    assert lines, f"the emulated pod printed no report (rc={run.returncode}):\n{run.output[-4000:]}"
    report = json.loads(lines[-1][len("PODSIM "):])
    assert report["stage"] == "step-loaded", f"step pod stopped at {report['stage']}: {report.get('error')}"
    assert run.returncode == 0, run.output[-4000:]
    assert report["step"] == step_name
    assert report["should_download_code"] is False
    assert report["cwd"] == layout.workdir == report["source_root"]
    assert report["source_root_readable"] is True
    assert report["step_module_file"].startswith(layout.workdir + "/steps/")
    assert all(value is True for value in report["writable"].values()), report["writable"]


# --------------------------------------------------------------------------
# Serving: which config (and so which base model) the container resolves
# --------------------------------------------------------------------------

SERVE_PROBE = r"""
import json, os, sys
from pathlib import Path
from typer.main import get_command
from drugslm_core.cli import app
from drugslm_core.config import load_settings, load_settings_file
args = sys.argv[1:]
group = get_command(app)
command = group.get_command(None, args[0])  # the subcommand, as `drugslm <args>` resolves it
params = command.make_context(args[0], list(args[1:])).params
config = params["config"]
# drugslm_core.cli.serve: the same expression picks the settings
resolved = load_settings_file(config) if config.is_file() else load_settings()
writable = {}
for var in ("HOME", "HF_HOME", "TMPDIR"):
    path = os.environ[var]
    try:
        os.makedirs(path, exist_ok=True)
        Path(path, ".probe").write_text("ok")
        writable[var] = True
    except OSError as error:
        writable[var] = str(error)
# drugslm_core.cli.serve refuses a non-loopback host without a key: read the keys as it does
from drugslm_core.serving.auth import ApiKeys, is_loopback
keys = ApiKeys.from_env()
print("PODSIM " + json.dumps({"config": str(config.resolve()), "is_file": config.is_file(),
      "base_model": resolved.base_model.source, "alias": params["model_alias"], "writable": writable,
      "keys_ok": keys.enabled or is_loopback(params["host"]), "key_accepted": keys.accepts("Bearer k2")}))
"""


def serving_containers(overlay: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    found = []
    for obj in rendered.workloads(overlay):
        spec = rendered.pod_spec(obj)
        for container in spec["containers"]:
            if (container.get("command") or [])[:2] == ["drugslm", "serve"]:
                found.append((spec, container))
    return found


def training_base_model() -> str:
    return yaml.safe_load(K8S_RUN_CONFIG.read_text())["parameters"]["config"]["base_model"]["source"]


@needs_emulation
@pytest.mark.skipif(rendered.KUBECTL is None, reason="kubectl not found: overlays cannot be rendered")
@pytest.mark.parametrize("overlay", rendered.OVERLAYS)
def test_serving_container_resolves_the_base_model_the_champion_was_trained_on(overlay: str, tmp_path: Path) -> None:
    containers = serving_containers(overlay)
    if not containers:
        pytest.skip(f"{overlay}: no `drugslm serve` container (serving is another engine in this overlay)")
    for index, (spec, container) in enumerate(containers):
        workdir = tmp_path / f"pod{index}"
        workdir.mkdir()
        (workdir / "probe").mkdir()
        (workdir / "probe" / "serve_probe.py").write_text(SERVE_PROBE)
        run = podsim.run_container(
            spec, container, ["python", "/podsim/serve_probe.py", *container["command"][1:], *container.get("args", [])],
            workdir, configmaps=rendered.configmaps(overlay), extra_ro_binds={"/podsim": workdir / "probe"},
            secrets={"drugslm-api-keys": {"DRUGSLM_API_KEYS": "k1,k2"}},
        )
        lines = [line for line in run.stdout.splitlines() if line.startswith("PODSIM ")]
        assert run.returncode == 0 and lines, run.output[-4000:]
        report = json.loads(lines[-1][len("PODSIM "):])
        assert report["is_file"], f"{overlay}: serving reads {report['config']}, which is not in the image"
        assert report["base_model"] == training_base_model(), (
            f"{overlay}: the serving container resolves base model {report['base_model']} from {report['config']}, "
            f"but the champion of a configs/k8s-gpu.yaml run is trained on {training_base_model()}: "
            "the base-model check would refuse it (crash loop)"
        )
        assert report["alias"] == "champion"
        assert all(value is True for value in report["writable"].values()), report["writable"]
        # on 0.0.0.0 the server starts only with a key: the Secret drugslm-api-keys, mounted as a file
        assert report["keys_ok"] and report["key_accepted"], report


# --------------------------------------------------------------------------
# MLflow: the container's own command, credentials from Secret files
# --------------------------------------------------------------------------

MLFLOW_PROBE = r"""
import json, os, signal, subprocess, time, urllib.request
command = json.loads(os.environ.pop("PODSIM_COMMAND"))
db_url = os.environ.pop("PODSIM_DB_URL")
server = subprocess.Popen(command, start_new_session=True)
report = {"health": None, "api": None, "cmdline_leaks": [], "exited": None}
deadline = time.time() + 240
while time.time() < deadline and server.poll() is None:
    try:
        with urllib.request.urlopen("http://127.0.0.1:5000/health", timeout=2) as response:
            report["health"] = response.status
            break
    except OSError:
        time.sleep(1)
if report["health"] == 200:
    request = urllib.request.Request(
        "http://127.0.0.1:5000/api/2.0/mlflow/experiments/search?max_results=5",
        headers={"Host": "mlflow.drugslm.svc.cluster.local:5000"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        report["api"] = [e["name"] for e in json.load(response).get("experiments", [])]
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        cmdline = open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
    except OSError:
        continue
    if db_url in cmdline:
        report["cmdline_leaks"].append(cmdline.replace("\0", " ")[:200])
report["exited"] = server.poll()
try:
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(timeout=30)
except (ProcessLookupError, subprocess.TimeoutExpired):
    os.killpg(server.pid, signal.SIGKILL)
print("PODSIM " + json.dumps(report), flush=True)
"""


@needs_emulation
@pytest.mark.skipif(rendered.KUBECTL is None, reason="kubectl not found: overlays cannot be rendered")
def test_mlflow_container_starts_with_credentials_from_secret_files(tmp_path: Path) -> None:
    mlflow = rendered.find("prod", "Deployment", "mlflow")
    spec = rendered.pod_spec(mlflow)
    (container,) = spec["containers"]
    (tmp_path / "probe").mkdir()
    (tmp_path / "probe" / "mlflow_probe.py").write_text(MLFLOW_PROBE)
    # The image is not this one: only its entrypoint matters here, the workdir it sets.
    layout = podsim.ImageLayout(workdir=container.get("workingDir", "/"), user=(10001, 10001))
    secrets = {
        "mlflow-db": {"DB_URL": "sqlite:////tmp/podsim-mlflow.db"},
        "mlflow-s3": {"AWS_ACCESS_KEY_ID": "placeholder-key-id", "AWS_SECRET_ACCESS_KEY": "placeholder-secret"},
    }
    run = podsim.run_container(
        spec, container, ["python", "/podsim/mlflow_probe.py"], tmp_path,
        configmaps=rendered.configmaps("prod"), layout=layout, secrets=secrets, network_namespace=True,
        extra_env={
            # what the kubelet runs: command + args with $(VAR) expanded from the container's env
            "PODSIM_COMMAND": json.dumps(podsim.expand(
                container["command"] + container["args"],
                podsim.container_env(container, rendered.configmaps("prod"), secrets),
            )),
            "PODSIM_DB_URL": secrets["mlflow-db"]["DB_URL"],
        },
        extra_ro_binds={"/podsim": tmp_path / "probe"}, timeout=400,
    )
    lines = [line for line in run.stdout.splitlines() if line.startswith("PODSIM ")]
    assert lines, run.output[-4000:]
    report = json.loads(lines[-1][len("PODSIM "):])
    assert report["health"] == 200, (report, run.output[-3000:])
    assert report["api"] == ["Default"], report
    assert report["cmdline_leaks"] == [], "the database URL is visible in a process's arguments"
    assert report["exited"] is None, "the server exited"


# --------------------------------------------------------------------------
# Orchestrator Job / schedule CronJob: ZenML's orchestrator entrypoint starts
# --------------------------------------------------------------------------


@needs_emulation
@pytest.mark.parametrize("kind", ["Job/orchestrator", "CronJob/schedule"])
def test_orchestrator_pod_starts_as_uid_10001_up_to_fetching_its_snapshot(kind: str, tmp_path: Path) -> None:
    """The pod's own command and args, run as it would be; without a ZenML server (the real pod
    gets ZENML_STORE_URL and a token) ZenML's client falls back to a local store in $HOME, so the
    entrypoint gets as far as asking for its snapshot: imports, argument parsing and ZenML's
    writes to its global config all happened as uid 10001."""
    run_config = km.merge_run_configs(K8S_RUN_CONFIG, REPO_ROOT / "configs" / "schedule.yaml")
    if kind == "Job/orchestrator":
        manifest = km.to_manifest(km.build_orchestrator_job(run_config))
    else:
        manifest = km.to_manifest(km.build_schedule_cron_job(run_config, run_config.schedule.cron_expression))
    spec = km.pod_spec(manifest)
    (container,) = spec["containers"]
    run = podsim.run_container(
        spec, container, container["command"] + container["args"], tmp_path,
        extra_env={"ZENML_ANALYTICS_OPT_IN": "false"},
    )
    assert run.returncode != 0
    assert "Unable to get pipeline snapshot with ID" in run.output, run.output[-3000:]
    for failure in ("PermissionError", "Read-only file system", "ModuleNotFoundError"):
        assert failure not in run.output, run.output[-3000:]
