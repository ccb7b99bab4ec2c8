"""The production-shaped stack, on loopback: S3 + MLflow server + ZenML server.

``python -m drugslm_ops.stacks.loopback up`` starts, on 127.0.0.1 only:

* moto's S3-protocol server, with the bucket ``loopback.bucket``. moto keeps objects in
  memory; its request recorder appends every request to ``s3-requests.jsonl`` in the state
  folder, and a restarted server replays that log, so the bucket survives restarts (as a
  real S3 or MinIO would) — ``restart-s3`` uses this to take S3 away mid-run;
* PostgreSQL (src/drugslm_ops/stacks/postgres.py; cluster under ``state_dir/postgres``, password in
  ``state_dir/postgres-password``), the backend store of:
* ``mlflow server`` (runs, registry, traces and feedback in PostgreSQL; artifacts proxied into
  that bucket; one worker);
* the ZenML local server (``zenml login --local``), so the dashboard shows every run;

then registers and activates the ZenML stack ``drugslm-remote``: an S3 artifact store
(endpoint from the settings, credentials in the ZenML secret ``drugslm_s3``, never in a
file) and the MLflow experiment tracker pointed at the server (its registry holds the versions). ``down``
stops exactly the processes ``up`` started, by PID, and checks that none is left, then stops
PostgreSQL (``pg_ctl stop``; its data stay for the next ``up``).
``status`` says what is running. ``restart-s3 --downtime N`` stops the S3 server, waits N
seconds and starts it again with its objects (the fault test; README, "Faults"). Ports,
bucket and state folder are the ``loopback`` section of the settings tree
(``DRUGSLM_LOOPBACK__S3_PORT=...`` and so on).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Annotated

import typer
from pydantic_settings import BaseSettings, SettingsConfigDict

from drugslm_core.serving.fine_tuning import pid_alive
from drugslm_ops.stacks.postgres import LocalPostgres

STACK = "drugslm-remote"
S3_SECRET = "drugslm_s3"
MLFLOW_SECRET = "drugslm_mlflow"
BIN = Path(sys.executable).parent


class LoopbackSettings(BaseSettings):
    """The production-shaped stack on loopback (``make stack-up``): ports, bucket, state folder.

    Test-harness settings, so they live with the tooling, not in the core's settings tree;
    environment overrides keep their names (``DRUGSLM_LOOPBACK__MLFLOW_PORT=5051``)."""

    model_config = SettingsConfigDict(env_prefix="DRUGSLM_LOOPBACK__", extra="forbid")

    host: str = "127.0.0.1"
    s3_port: int = 9010
    mlflow_port: int = 5050
    zenml_port: int = 8237
    postgres_port: int = 5440
    """The MLflow server's backend store (PostgreSQL; cluster under ``state_dir/postgres``)."""
    bucket: str = "drugslm-artifacts"
    region: str = "us-east-1"
    state_dir: Path = Path(".drugslm/loopback")


def _aws_env(settings: LoopbackSettings) -> dict[str, str]:
    """moto accepts any credentials; real ones come from the caller's environment if set."""
    return {
        "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "loopback"),
        "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "loopback"),
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", settings.region),
    }


def s3_endpoint(settings: LoopbackSettings) -> str:
    return f"http://{settings.host}:{settings.s3_port}"


def mlflow_uri(settings: LoopbackSettings) -> str:
    return f"http://{settings.host}:{settings.mlflow_port}"


def zenml_url(settings: LoopbackSettings) -> str:
    return f"http://{settings.host}:{settings.zenml_port}"


def postgres(settings: LoopbackSettings) -> LocalPostgres:
    """The stack's PostgreSQL (its password made once, kept 0600 in the state folder)."""
    state = Path(settings.state_dir)
    state.mkdir(parents=True, exist_ok=True)
    secret = state / "postgres-password"
    if not secret.is_file():
        secret.touch(mode=0o600)
        secret.write_text(secrets.token_hex(16))
    return LocalPostgres(state / "postgres", settings.postgres_port, secret.read_text().strip())


def _pid_file(settings: LoopbackSettings) -> Path:
    return Path(settings.state_dir) / "pids.json"


def _read_pids(settings: LoopbackSettings) -> dict[str, int]:
    """Service name → PID of what ``up`` started (empty when nothing was started)."""
    path = _pid_file(settings)
    return json.loads(path.read_text()) if path.exists() else {}


def _wait_http(url: str, timeout: float, what: str, pid: int | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid is not None and not pid_alive(pid):
            raise RuntimeError(f"{what} exited during start-up; see its log in the state folder")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except Exception:
            time.sleep(0.5)
    raise TimeoutError(f"{what} did not answer at {url} within {timeout:.0f} s")


def _start(name: str, args: list[str], env: dict[str, str], settings: LoopbackSettings) -> int:
    logs = Path(settings.state_dir)
    handle = (logs / f"{name}.log").open("ab")
    process = subprocess.Popen(
        args, stdout=handle, stderr=subprocess.STDOUT, env={**os.environ, **env}, start_new_session=True
    )
    return process.pid


def _zenml_daemon_pid() -> int | None:
    """The PID ZenML recorded for its local daemon server, if one is running."""
    from zenml.zen_server.deploy.daemon.daemon_zen_server import DaemonZenServer

    service = Path(DaemonZenServer.config_path())
    for candidate in sorted(service.rglob("*.pid")):
        try:
            return int(candidate.read_text().strip())
        except ValueError:
            continue
    return None


def up(settings: LoopbackSettings) -> dict[str, int]:
    """Start the three servers (those not already running) and register the stack."""
    state = Path(settings.state_dir)
    state.mkdir(parents=True, exist_ok=True)
    pids = {name: pid for name, pid in _read_pids(settings).items() if pid_alive(pid)}
    aws = _aws_env(settings)

    if "s3" not in pids:
        pids["s3"] = _start_s3(settings)
        _pid_file(settings).write_text(json.dumps(pids))
    _ensure_bucket(settings)

    database = postgres(settings)
    backend = database.uri if database.running() else database.start()

    if "mlflow" not in pids:
        pids["mlflow"] = _start(
            "mlflow",
            [
                str(BIN / "mlflow"), "server",
                "--host", settings.host, "--port", str(settings.mlflow_port), "--workers", "1",
                "--artifacts-destination", f"s3://{settings.bucket}/mlflow",
            ],  # the store URI (with its password) by environment, not on the command line
            {**aws, "MLFLOW_S3_ENDPOINT_URL": s3_endpoint(settings), "MLFLOW_BACKEND_STORE_URI": backend},
            settings,
        )
        _pid_file(settings).write_text(json.dumps(pids))
    _wait_http(f"{mlflow_uri(settings)}/health", 120, "MLflow server", pids["mlflow"])

    subprocess.run(
        [str(BIN / "zenml"), "login", "--local", "--port", str(settings.zenml_port), "--ip-address", settings.host],
        check=True, env={**os.environ, "ZENML_AUTO_OPEN_DASHBOARD": "false"},
    )
    daemon = _zenml_daemon_pid()
    if daemon is not None:
        pids["zenml"] = daemon
    _pid_file(settings).write_text(json.dumps(pids))
    register_stack(settings)
    return pids


def _s3_log(settings: LoopbackSettings) -> Path:
    return Path(settings.state_dir) / "s3-requests.jsonl"


def _start_s3(settings: LoopbackSettings) -> int:
    """Start moto with its request recorder on; replay the recorded requests of earlier runs."""
    log = _s3_log(settings)
    pid = _start(
        "s3", [str(BIN / "moto_server"), "-H", settings.host, "-p", str(settings.s3_port)],
        {**_aws_env(settings), "MOTO_ENABLE_RECORDING": "True", "MOTO_RECORDER_FILEPATH": str(log.resolve())},
        settings,
    )
    _wait_http(f"{s3_endpoint(settings)}/moto-api/", 30, "moto S3 server", pid)
    if log.exists() and log.stat().st_size:
        _replay(log, s3_endpoint(settings))
    return pid


def _recorded_entries(log: Path) -> list[dict]:
    """The recorder's entries. moto writes each entry and its newline with two separate appends
    from the request's thread, so concurrent requests (multipart parts) can put two entries on one
    line: decode every object on a line, not one per line. A last entry cut off by the server's
    kill was a request that never got its answer (its client retries it): it is skipped."""
    decoder = json.JSONDecoder()
    entries: list[dict] = []
    text = log.read_text()
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            return entries
        try:
            entry, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError:
            if text.find("\n", position) == -1:  # the unfinished last write of a killed server
                return entries
            raise
        entries.append(entry)


def _replay(log: Path, endpoint: str) -> int:
    """Replay the recorded state-changing requests against a fresh moto; return how many.

    Not moto's own ``replay-recording``: it resends multipart uploads with their old
    upload ids, which a fresh server does not know (objects over boto3's 8 MB threshold,
    e.g. MLflow's artifact uploads, would be lost). Here each ``CreateMultipartUpload``
    maps the recorded id to the new one. Reads are skipped; moto does not check signatures.
    """
    import base64
    import re
    from urllib.parse import urlsplit

    import requests

    new_ids: dict[str, str] = {}  # recorded upload id -> the fresh server's
    latest_for_path: dict[str, str] = {}  # object path -> upload id of its last CreateMultipartUpload
    sent = 0
    for entry in _recorded_entries(log):
        if entry["method"] in {"GET", "HEAD", "OPTIONS"}:
            continue
        parts = urlsplit(entry["url"])
        body = entry.get("body") or b""
        if entry.get("body_encoded"):
            body = base64.b64decode(body)
        headers = {k: v for k, v in entry["headers"].items() if k.lower() not in {"transfer-encoding", "host"}}
        query = parts.query
        match = re.search(r"uploadId=([^&]+)", query)
        if match:
            old = match.group(1)
            new_ids.setdefault(old, latest_for_path.get(parts.path, old))
            query = query.replace(f"uploadId={old}", f"uploadId={new_ids[old]}")
        response = requests.request(
            entry["method"], f"{endpoint}{parts.path}" + (f"?{query}" if query else ""),
            headers=headers, data=body, timeout=120,
        )
        if entry["method"] == "POST" and re.search(r"(^|&)uploads(=|&|$)", query):
            upload_id = re.search(r"<UploadId>([^<]+)</UploadId>", response.text)
            if upload_id:
                latest_for_path[parts.path] = upload_id.group(1)
        sent += 1
    return sent


def restart_s3(
    settings: LoopbackSettings, downtime: float, until_log: Path | None = None, until: str | None = None,
    max_downtime: float = 600.0,
) -> tuple[int, float]:
    """Stop the S3 server, leave it down, start it again with its objects; return (pid, seconds down).

    It stays down ``downtime`` seconds and, with ``until_log``/``until``, also until that
    regular expression appears in that log (at most ``max_downtime`` seconds): a fault test
    waits for the client to notice the outage instead of hoping a request falls in the window.
    """
    import re

    pids = _read_pids(settings)
    if "s3" not in pids or not pid_alive(pids["s3"]):
        raise RuntimeError("the loopback S3 server is not running (make stack-up)")
    _stop([pids["s3"]])
    stopped = time.monotonic()
    time.sleep(downtime)
    if until_log is not None and until:
        pattern = re.compile(until)
        ansi = re.compile(r"\x1b\[[0-9;]*m")
        while time.monotonic() - stopped < max_downtime:
            if until_log.exists() and pattern.search(ansi.sub("", until_log.read_text(errors="replace"))):
                break
            time.sleep(0.5)
    down_for = time.monotonic() - stopped
    pids["s3"] = _start_s3(settings)
    _pid_file(settings).write_text(json.dumps(pids))
    return pids["s3"], down_for


def _ensure_bucket(settings: LoopbackSettings) -> None:
    import boto3

    aws = _aws_env(settings)
    client = boto3.client(
        "s3", endpoint_url=s3_endpoint(settings), region_name=aws["AWS_DEFAULT_REGION"],
        aws_access_key_id=aws["AWS_ACCESS_KEY_ID"], aws_secret_access_key=aws["AWS_SECRET_ACCESS_KEY"],
    )
    if settings.bucket not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
        client.create_bucket(Bucket=settings.bucket)


def register_stack(settings: LoopbackSettings) -> None:
    """Create (or update) the secrets, components and stack ``drugslm-remote``, and activate it."""
    from zenml.client import Client
    from zenml.enums import StackComponentType

    client = Client()
    aws = _aws_env(settings)
    secrets = {
        S3_SECRET: {"aws_access_key_id": aws["AWS_ACCESS_KEY_ID"], "aws_secret_access_key": aws["AWS_SECRET_ACCESS_KEY"]},
        # The loopback MLflow server has no auth; ZenML's tracker insists on a method for http URIs.
        MLFLOW_SECRET: {"username": "drugslm", "password": "loopback-no-auth"},
    }
    for name, values in secrets.items():
        if client.list_secrets(name=name).items:
            client.update_secret(name, add_or_update_values=values)
        else:
            client.create_secret(name, values=values)

    components = {
        StackComponentType.ARTIFACT_STORE: (
            "s3_loopback", "s3",
            {
                "path": f"s3://{settings.bucket}/zenml",
                "key": f"{{{{{S3_SECRET}.aws_access_key_id}}}}",
                "secret": f"{{{{{S3_SECRET}.aws_secret_access_key}}}}",
                "client_kwargs": {"endpoint_url": s3_endpoint(settings), "region_name": aws["AWS_DEFAULT_REGION"]},
            },
        ),
        StackComponentType.EXPERIMENT_TRACKER: (
            "mlflow_server", "mlflow",
            {
                "tracking_uri": mlflow_uri(settings),
                "tracking_username": f"{{{{{MLFLOW_SECRET}.username}}}}",
                "tracking_password": f"{{{{{MLFLOW_SECRET}.password}}}}",
            },
        ),
    }
    for kind, (name, flavor, configuration) in components.items():
        if client.list_stack_components(type=kind, name=name).items:
            client.update_stack_component(name, kind, configuration=configuration)
        else:
            client.create_stack_component(name=name, flavor=flavor, component_type=kind, configuration=configuration)
    stack_components = {kind: name for kind, (name, _, _) in components.items()}
    stack_components[StackComponentType.ORCHESTRATOR] = "default"
    if not client.list_stacks(name=STACK).items:
        client.create_stack(name=STACK, components=stack_components)
    client.activate_stack(STACK)


def _signal(pid: int, sig: signal.Signals) -> None:
    """Signal the process group we started (server + its workers), or the process alone
    when it leads no group of its own (the ZenML daemon)."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _stop(pids: list[int], timeout: float = 20.0) -> None:
    """SIGTERM, then SIGKILL what is still alive after ``timeout``."""
    for pid in pids:
        if pid_alive(pid):
            _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(pid_alive(pid) for pid in pids):
        time.sleep(0.2)
    for pid in pids:
        if pid_alive(pid):
            _signal(pid, signal.SIGKILL)
        try:  # workers left in a server's group (mlflow's job consumers) go too
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    time.sleep(0.2)


def down(settings: LoopbackSettings, timeout: float = 20.0) -> list[str]:
    """Stop what ``up`` started (by PID) and the ZenML local server; return what was stopped."""
    pids = _read_pids(settings)
    if "zenml" in pids or _zenml_daemon_pid() is not None:
        subprocess.run([str(BIN / "zenml"), "logout", "--local"], check=False, capture_output=True)
    _stop(list(pids.values()), timeout)
    left = [f"{name} (pid {pid})" for name, pid in pids.items() if pid_alive(pid)]
    database = postgres(settings)
    stopped_postgres = database.running()
    database.stop()
    if database.running():
        left.append(f"PostgreSQL ({database.data})")
    if left:
        raise RuntimeError(f"still running after stack-down: {', '.join(left)}")
    _pid_file(settings).unlink(missing_ok=True)
    return sorted(pids) + (["postgres"] if stopped_postgres else [])


def status(settings: LoopbackSettings) -> dict[str, str]:
    pids = _read_pids(settings)
    urls = {
        "s3": f"{s3_endpoint(settings)}/moto-api/",
        "mlflow": f"{mlflow_uri(settings)}/health",
        "zenml": f"{zenml_url(settings)}/health",
    }
    report = {}
    for name, url in urls.items():
        pid = pids.get(name)
        try:
            with urllib.request.urlopen(url, timeout=2):
                answering = "answering"
        except Exception:
            answering = "not answering"
        report[name] = f"pid {pid if pid else '-'} {'alive' if pid and pid_alive(pid) else 'stopped'}, {answering} at {url}"
    database = postgres(settings)
    report["postgres"] = f"{'running' if database.running() else 'stopped'} on 127.0.0.1:{database.port} ({database.data})"
    return report


app = typer.Typer(help=(__doc__ or "").split("\n\n")[0], no_args_is_help=True, add_completion=False)


@app.command("up")
def up_command() -> None:
    """Start PostgreSQL, S3, MLflow and the ZenML server on loopback; register and activate drugslm-remote."""
    settings = LoopbackSettings()
    pids = up(settings)
    print(f"Loopback stack up: {pids}. ZenML stack '{STACK}' is active.")
    print(f"  S3 endpoint  {s3_endpoint(settings)}  bucket {settings.bucket}")
    print(f"  MLflow       {mlflow_uri(settings)}  (backend store: PostgreSQL on 127.0.0.1:{settings.postgres_port})")
    print(f"  ZenML        {zenml_url(settings)}  (dashboard)")


@app.command("down")
def down_command() -> None:
    """Stop exactly the processes ``up`` started, then PostgreSQL."""
    print(f"Stopped: {', '.join(down(LoopbackSettings())) or 'nothing was running'}")


@app.command("status")
def status_command() -> None:
    """What is running, and whether it answers."""
    for name, line in status(LoopbackSettings()).items():
        print(f"  {name:7} {line}")


@app.command("restart-s3")
def restart_s3_command(
    downtime: Annotated[float, typer.Option(help="seconds S3 stays down (at least)")] = 10.0,
    until_log: Annotated[Path | None, typer.Option(help="stay down until --until appears in this log too")] = None,
    until: Annotated[str | None, typer.Option(help="regular expression awaited in --until-log")] = None,
    max_downtime: Annotated[float, typer.Option(help="give up waiting after this many seconds")] = 600.0,
) -> None:
    """Stop the S3 server, wait, start it again with its objects (the fault test)."""
    pid, down_for = restart_s3(LoopbackSettings(), downtime, until_log, until, max_downtime)
    print(f"S3 server restarted after {down_for:.1f} s down (pid {pid}), objects replayed")


if __name__ == "__main__":
    app()
