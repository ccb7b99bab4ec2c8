"""Inside an emulated step pod (tests/k8s/podsim.py): ZenML's step entrypoint up to loading the step.

Invoked with the step container's own arguments (``--entrypoint_config_source ...
--snapshot_id ... --step_name ...``). It follows ``zenml.entrypoints.entrypoint.main``
and ``StepEntrypointConfiguration.run`` up to the point where the step's code is loaded;
the snapshot, which a real pod fetches from the ZenML server, is replaced by the facts
the server would hand out (``PODSIM_SNAPSHOT``: the code path ZenML's submission stored,
if any, and the run config's Docker settings). Prints one ``PODSIM {json}`` line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import types

import zenml.entrypoints.entrypoint as zenml_entrypoint

# `python -m zenml.entrypoints.entrypoint` is what the pod runs: same __main__ file.
sys.modules["__main__"].__file__ = zenml_entrypoint.__file__

from zenml.config import DockerSettings  # noqa: E402
from zenml.entrypoints.base_entrypoint_configuration import (  # noqa: E402
    ENTRYPOINT_CONFIG_SOURCE_OPTION,
    BaseEntrypointConfiguration,
)
from zenml.integrations.registry import integration_registry  # noqa: E402
from zenml.utils import code_utils, source_utils  # noqa: E402

report: dict = {"stage": "start"}


def emit(code: int) -> None:
    print("PODSIM " + json.dumps(report), flush=True)
    sys.exit(code)


facts = json.loads(os.environ.pop("PODSIM_SNAPSHOT"))
parser = argparse.ArgumentParser()
parser.add_argument(f"--{ENTRYPOINT_CONFIG_SOURCE_OPTION}", required=True)
args, remaining = parser.parse_known_args()
config_class = source_utils.load_and_validate_class(
    args.entrypoint_config_source, expected_class=BaseEntrypointConfiguration
)
entrypoint = config_class(arguments=remaining)
report.update(stage="entrypoint-parsed", entrypoint=config_class.__name__, step=entrypoint.entrypoint_args.get("step_name"))

code_path = None
if facts["code_uploaded"]:
    # The submitting client archived its checkout into the artifact store
    # (code_utils.upload_code_if_necessary); here that store is the pod's local default one.
    archive = code_utils.CodeArchive(root=facts["submitted_root"])
    code_path = code_utils.upload_code_if_necessary(archive)
docker_settings = DockerSettings(**facts["docker_settings"])
step_name = entrypoint.entrypoint_args.get("step_name")
entrypoint._snapshot = types.SimpleNamespace(  # what should_download_code/prepare_code_environment read
    code_path=code_path,
    code_reference=None,
    pipeline_configuration=types.SimpleNamespace(docker_settings=docker_settings),
    step_configurations={step_name: types.SimpleNamespace(config=types.SimpleNamespace(docker_settings=docker_settings))},
)
report["should_download_code"] = entrypoint.should_download_code

integration_registry.activate_integrations()
try:
    entrypoint.prepare_code_environment()
except OSError as error:
    report.update(stage="prepare_code_environment", error=f"{type(error).__name__}: {error}")
    emit(3)
report.update(stage="code-ready", cwd=os.getcwd(), source_root=source_utils.get_source_root())

try:
    step = source_utils.load(facts["step_source"])
except Exception as error:  # noqa: BLE001 - reported to the test, which fails on it
    report.update(stage="load-step", error=f"{type(error).__name__}: {error}")
    emit(4)
report.update(stage="step-loaded", step_module_file=sys.modules[step.entrypoint.__module__].__file__)

writable = {}
for label, path in facts["must_write"].items():
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, ".podsim-write-probe")
        with open(probe, "w") as handle:
            handle.write("ok")
        os.remove(probe)
        writable[label] = True
    except OSError as error:
        writable[label] = f"{type(error).__name__}: {error}"
report["writable"] = writable
report["source_root_readable"] = os.access(report["source_root"], os.R_OK | os.X_OK)
emit(0)
