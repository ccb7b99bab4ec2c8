"""The deployment pipeline end to end through `zenml pipeline run`, local target.

In a temporary ZenML repository (tests/isolated_project.py): a tiny real LoRA adapter is
registered as @champion in the stack's MLflow registry (no training run), and a ZenML model
version says it registered that MLflow version (as the training pipeline's register step
does). The pipeline then starts `drugslm serve` as a managed process on a free loopback
port, smoke-tests it with the openai client and records the deployment; the test talks to
the server itself, then stops it. A second run for a model without a champion must end
with one clear line. About two minutes on 2 CPU cores.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import mlflow
import openai
import psutil
import pytest

from drugslm_core.serving.process import ServerProcess
from tests.isolated_project import BIN, isolated_project, run_command
from tests.registered_champion import register_champion
from tests.servers import free_port

pytestmark = pytest.mark.e2e

MODEL = "drugslm-deploy-e2e"
API_KEY = "e2e-key-1"



@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    base_dir = tmp_path_factory.mktemp("deploy-e2e")
    state_dir = base_dir / "serve-state"
    port = free_port()
    project, env = isolated_project(
        base_dir,
        {"registry": {"model_name": MODEL},
         "deployment": {"port": port, "state_dir": str(state_dir), "smoke_max_tokens": 8, "ready_timeout_s": 600}},
        extra_env={"DRUGSLM_API_KEYS": API_KEY},
    )
    tracking_uri = run_command([str(BIN / "python"), "-m", "drugslm_ops.stacks.local"], project, env).strip().splitlines()[-1]
    version, _, _ = register_champion(tracking_uri, MODEL, base_dir)
    run_command([str(BIN / "python"), "-c", (
        "from zenml import log_metadata\nfrom zenml.client import Client\nc = Client()\n"
        "model = c.create_model(name='drugslm')\n"
        "mv = c.create_model_version(model_name_or_id=model.id, name='registered-by-training')\n"
        f"log_metadata({{'mlflow_model': '{MODEL}', 'mlflow_version': '{version}'}}, model_version_id=mv.id)\n"
    )], project, env)
    manager = ServerProcess(state_dir)
    try:
        output = run_command(
            [str(BIN / "zenml"), "pipeline", "run", "pipelines.deployment.deployment_pipeline", "-c", "configs/test.yaml"],
            project, env,
        )
        yield {"project": project, "env": env, "tracking_uri": tracking_uri, "version": version, "port": port,
               "manager": manager, "output": output}
    finally:
        manager.stop()


def test_server_is_up_and_serves_the_champion(deployment: dict) -> None:
    status = deployment["manager"].status()
    assert status.running and status.state is not None
    assert status.state.version == deployment["version"]
    assert status.state.url == f"http://127.0.0.1:{deployment['port']}"
    client = openai.OpenAI(base_url=f"{status.state.url}/v1", api_key=API_KEY, max_retries=0, timeout=300)
    (model,) = client.models.list().data
    assert model.id.endswith(f"/{deployment['version']}") or model.id.endswith(f"-v{deployment['version']}")
    answer = client.chat.completions.create(
        model=model.id, messages=[{"role": "user", "content": "What is metformin used for?"}], max_tokens=8,
    )
    assert answer.choices[0].message.content.strip()
    assert answer.usage.completion_tokens > 0


def test_status_command_reports_it(deployment: dict) -> None:
    out = run_command([str(BIN / "drugslm"), "serve", "status", "--config", "configs/test.yaml"],
                      deployment["project"], deployment["env"])
    pid = deployment["manager"].running_pid()
    assert f"pid={pid}" in out and f"version={deployment['version']}" in out and str(deployment["port"]) in out


def test_deployment_recorded_in_mlflow(deployment: dict) -> None:
    client = mlflow.MlflowClient(tracking_uri=deployment["tracking_uri"])
    tags = client.get_model_version(MODEL, deployment["version"]).tags
    assert tags["deployment.local.smoke_test"] == "passed", tags.get("deployment.local.smoke_detail")
    assert tags["deployment.local.url"] == f"http://127.0.0.1:{deployment['port']}/v1"
    assert tags["deployment.last"].startswith("local ")


def test_deployment_recorded_on_the_zenml_model_version(deployment: dict) -> None:
    script = (
        "import json\nfrom zenml.client import Client\n"
        "mv = Client().get_model_version('drugslm', 'registered-by-training')\n"
        "print(json.dumps(mv.run_metadata.get('deployment')))\n"
    )
    out = run_command([str(BIN / "python"), "-c", script], deployment["project"], deployment["env"])
    record = json.loads(out.strip().splitlines()[-1])
    assert record["version"] == deployment["version"] and record["target"] == "local"
    assert record["smoke_test"] == "passed" and record["url"].endswith(f":{deployment['port']}/v1")


def test_no_champion_is_one_line_and_leaves_the_server(deployment: dict) -> None:
    env = {**deployment["env"], "DRUGSLM_REGISTRY__MODEL_NAME": "drugslm-nobody"}
    result = subprocess.run(
        [str(BIN / "zenml"), "pipeline", "run", "pipelines.deployment.deployment_pipeline", "-c", "configs/test.yaml"],
        cwd=deployment["project"], env=env, capture_output=True, text=True, timeout=900,
    )
    output = result.stdout + result.stderr  # ZenML logs steps on stderr
    assert result.returncode == 0, output[-4000:]
    assert "nothing to deploy: no drugslm-nobody@champion" in output
    assert "Traceback" not in output
    assert deployment["manager"].status().running  # the served champion is untouched


def test_stop_command_stops_it(deployment: dict) -> None:
    pid = deployment["manager"].running_pid()
    out = run_command([str(BIN / "drugslm"), "serve", "stop", "--config", "configs/test.yaml"],
                      deployment["project"], deployment["env"])
    assert f"stopped (pid {pid})" in out
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not (Path(deployment["manager"].state_dir) / "serve.pid").exists()
