"""The local server as a managed background process (``drugslm serve start|stop|status``).

One server per state folder (``deployment.state_dir``, default ``.drugslm/serve/``):

* ``serve.pid``: the process id and its start time (a pid that the system gave to another
  process since is recognised as stale by its different start time);
* ``serve.log``: the server's stdout and stderr;
* ``serve.json``: what is served (version, URL, command), shown by ``status``.

``start`` launches the command in its own session (so ``stop`` reaches its children too),
then waits until it is ready: ``GET /readyz`` answers 200 (503 means still loading), or,
on a server without ``/readyz`` (404), ``GET /v1/models`` answers 200. A bearer key is
sent when one is configured. A process that exits or is not ready in time is stopped and
the tail of its log is in the error. ``stop`` sends SIGTERM to the process group, waits,
then SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import psutil
from pydantic import BaseModel

PID_FILE = "serve.pid"
LOG_FILE = "serve.log"
STATE_FILE = "serve.json"


class ServerState(BaseModel):
    """What ``serve.json`` records about the managed server."""

    pid: int
    url: str
    command: list[str]
    started_at: str
    version: str | None = None
    """The registered version it was started for (``None``: whatever the alias names)."""
    model: str | None = None
    """The model id the server reported once ready (``GET /v1/models``)."""


class ServerStatus(BaseModel):
    running: bool
    state: ServerState | None = None
    log_file: str
    stale_pid: int | None = None
    """A pid file whose process is gone (removed by the status check)."""

    def describe(self) -> str:
        if not self.running or self.state is None:
            stale = f" (removed a stale pid file for pid {self.stale_pid})" if self.stale_pid else ""
            return f"drugslm server: not running{stale}"
        state = self.state
        return (
            f"drugslm server: running pid={state.pid} url={state.url} version={state.version or '?'} "
            f"model={state.model or '?'} since={state.started_at} log={self.log_file}"
        )


class ServerError(RuntimeError):
    """The managed server could not be started (the message holds the log tail)."""


def api_key_from_env() -> str | None:
    """The first key of ``DRUGSLM_API_KEYS`` (comma-separated) or of the file ``DRUGSLM_API_KEYS_FILE``."""
    raw = os.environ.get("DRUGSLM_API_KEYS", "")
    path = os.environ.get("DRUGSLM_API_KEYS_FILE")
    if not raw.strip() and path and Path(path).is_file():
        raw = Path(path).read_text().replace("\n", ",")
    keys = [key.strip() for key in raw.split(",") if key.strip()]
    return keys[0] if keys else None


def auth_headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


class ServerProcess:
    """The managed server of one state folder."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.pid_file = self.state_dir / PID_FILE
        self.log_file = self.state_dir / LOG_FILE
        self.state_file = self.state_dir / STATE_FILE

    # -- pid file ---------------------------------------------------------------------------

    def _recorded(self) -> tuple[int, float] | None:
        if not self.pid_file.is_file():
            return None
        try:
            pid_text, created_text = self.pid_file.read_text().split()
            return int(pid_text), float(created_text)
        except ValueError as error:
            raise ServerError(
                f"{self.pid_file}: not a pid file of ours (expected '<pid> <start time>'); remove it by hand"
            ) from error

    def _alive(self, pid: int, created: float) -> bool:
        """The recorded process still runs (same pid *and* same start time: not a reused pid)."""
        try:
            process = psutil.Process(pid)
            return abs(process.create_time() - created) < 1.0 and process.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    def _clear(self) -> None:
        for path in (self.pid_file, self.state_file):
            path.unlink(missing_ok=True)

    def running_pid(self) -> int | None:
        recorded = self._recorded()
        return recorded[0] if recorded and self._alive(*recorded) else None

    def status(self) -> ServerStatus:
        recorded = self._recorded()
        if recorded is None:
            return ServerStatus(running=False, log_file=str(self.log_file))
        if not self._alive(*recorded):
            self._clear()
            return ServerStatus(running=False, log_file=str(self.log_file), stale_pid=recorded[0])
        state = ServerState.model_validate_json(self.state_file.read_text()) if self.state_file.is_file() else None
        return ServerStatus(running=True, state=state, log_file=str(self.log_file))

    # -- start / stop -----------------------------------------------------------------------

    def start(
        self,
        command: list[str],
        url: str,
        *,
        version: str | None = None,
        api_key: str | None = None,
        ready_timeout_s: float = 600.0,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> ServerState:
        """Launch ``command`` (a server that will listen on ``url``) and wait until it is ready.

        Raises ``ServerError`` if a server of this state folder already runs, if the process
        exits, or if it is not ready within ``ready_timeout_s`` (it is stopped then)."""
        status = self.status()  # also clears a stale pid file
        if status.running:
            raise ServerError(
                f"a drugslm server already runs from {self.state_dir} (pid {self.running_pid()}): "
                "`drugslm serve stop` first"
            )
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            log.write(f"\n=== {_now()} starting: {' '.join(command)}\n".encode())
            log.flush()
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, cwd=cwd, start_new_session=True,  # its own process group: stop reaches children
            )
        created = psutil.Process(process.pid).create_time()
        self.pid_file.write_text(f"{process.pid} {created}\n")
        state = ServerState(pid=process.pid, url=url, command=command, started_at=_now(), version=version)
        self.state_file.write_text(state.model_dump_json(indent=2))
        try:
            state.model = wait_until_ready(url, api_key, ready_timeout_s, process)
        except ServerError as error:
            self.stop()
            raise ServerError(f"{error}\n--- last lines of {self.log_file} ---\n{self.log_tail()}") from None
        self.state_file.write_text(state.model_dump_json(indent=2))
        return state

    def stop(self, timeout_s: float = 20.0) -> int | None:
        """SIGTERM the server's process group, SIGKILL what is left after ``timeout_s``;
        the pid it stopped, or ``None`` when nothing was running (a stale pid file is removed)."""
        recorded = self._recorded()
        if recorded is None:
            return None
        pid, created = recorded
        if not self._alive(pid, created):
            self._clear()
            return None
        process = psutil.Process(pid)
        family = [process, *process.children(recursive=True)]
        _signal_group(pid, signal.SIGTERM)
        _, alive = psutil.wait_procs(family, timeout=timeout_s)
        if alive:
            _signal_group(pid, signal.SIGKILL)
            for leftover in alive:
                try:
                    leftover.kill()
                except psutil.NoSuchProcess:
                    pass
            psutil.wait_procs(alive, timeout=5)
        _reap(pid)
        self._clear()
        return pid

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_file.is_file():
            return ""
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])


def wait_until_ready(
    url: str, api_key: str | None, timeout_s: float, process: subprocess.Popen | None = None, interval_s: float = 0.5
) -> str | None:
    """Poll ``url`` until the server is ready; return the first model id of ``/v1/models`` (if any).

    Ready: ``/readyz`` answers 200; or it answers 404 (a server without the route) and
    ``/v1/models`` answers 200. A 401/403 means the key is wrong or missing: that will not
    get better by waiting, so it is an error at once."""
    deadline = time.monotonic() + timeout_s
    base = url.rstrip("/")
    last = "no answer yet"
    with httpx.Client(timeout=5.0, headers=auth_headers(api_key)) as client:
        while True:
            if process is not None and process.poll() is not None:
                raise ServerError(f"the server process exited with code {process.returncode} before it was ready")
            try:
                ready = client.get(f"{base}/readyz")
                if ready.status_code == 404:
                    ready = client.get(f"{base}/v1/models")
                if ready.status_code in (401, 403):
                    raise ServerError(
                        f"{ready.request.url} answered {ready.status_code}: set DRUGSLM_API_KEYS to a key the server accepts"
                    )
                if ready.status_code == 200:
                    return _first_model(client, base)
                last = f"{ready.request.url} answered {ready.status_code}"
            except httpx.TransportError as error:
                last = f"{type(error).__name__}: {error}"
            if time.monotonic() >= deadline:
                raise ServerError(f"the server at {url} was not ready after {timeout_s:.0f} s ({last})")
            time.sleep(interval_s)


def _first_model(client: httpx.Client, base: str) -> str | None:
    try:
        answer = client.get(f"{base}/v1/models")
        data = answer.json().get("data") if answer.status_code == 200 else None
        return str(data[0]["id"]) if data else None
    except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError):
        return None  # a readiness route without the OpenAI models list: nothing to report


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)  # started with start_new_session: the group id is its pid
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)


def _reap(pid: int) -> None:
    """Collect the exit status when the server is our own child (a ``start`` in this process)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def server_command(
    config: Path, host: str, port: int, version: str | None = None, model_name: str | None = None, alias: str | None = None,
) -> list[str]:
    """The foreground ``drugslm serve`` of this interpreter, as the managed process runs it:
    ``model_name@alias`` (followed as it moves), or the fixed ``version``."""
    import sys

    command = [sys.executable, "-m", "drugslm_core.cli", "serve", "--config", str(config), "--host", host, "--port", str(port)]
    if model_name is not None:
        command += ["--model-name", model_name]
    if alias is not None:
        command += ["--model-alias", alias]
    return command + ["--version", str(version)] if version is not None else command
