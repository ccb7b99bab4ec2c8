"""The managed server process (``drugslm serve start|stop|status``) with real processes on loopback.

The servers here are small real HTTP servers (Python's ``http.server``) so that the
pid file, readiness wait, timeout and stop escalation are exercised without loading a
model; the deployment end-to-end test runs the same code with ``drugslm serve``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from drugslm_core.serving.process import ServerError, ServerProcess, api_key_from_env, server_command
from tests.servers import free_port

SERVER = textwrap.dedent(
    """
    import json, signal, sys, time
    from http.server import BaseHTTPRequestHandler, HTTPServer

    port, key, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    if mode == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if mode == "slow":
        time.sleep(1.5)  # "loading the model": nothing listens yet
    started = time.monotonic()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if key != "-" and self.headers.get("Authorization") != f"Bearer {key}":
                return self._send(401, {"error": "no key"})
            if self.path == "/readyz":
                if mode == "no-readyz":
                    return self._send(404, {})
                if mode == "loading" and time.monotonic() - started < 1.0:
                    return self._send(503, {"status": "loading"})
                return self._send(200, {"status": "ready"})
            if self.path == "/v1/models":
                return self._send(200, {"object": "list", "data": [{"id": "drugslm/7", "object": "model"}]})
            return self._send(404, {})

        def _send(self, code, body):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            print("request", *args, flush=True)

    print("listening", port, flush=True)
    HTTPServer(("127.0.0.1", port), Handler).serve_forever()
    """
)


@pytest.fixture
def server_script(tmp_path: Path) -> Path:
    path = tmp_path / "fake_server.py"
    path.write_text(SERVER)
    return path


@pytest.fixture
def manager(tmp_path: Path):  # type: ignore[no-untyped-def]
    manager = ServerProcess(tmp_path / "state")
    yield manager
    manager.stop(timeout_s=2)  # never leave a process behind, whatever the test did


def command(script: Path, port: int, key: str = "-", mode: str = "plain") -> list[str]:
    return [sys.executable, str(script), str(port), key, mode]


def test_start_status_stop(manager: ServerProcess, server_script: Path) -> None:
    port = free_port()
    state = manager.start(command(server_script, port, mode="loading"), f"http://127.0.0.1:{port}",
                          version="7", ready_timeout_s=30)
    assert state.model == "drugslm/7"
    pid_text, _ = manager.pid_file.read_text().split()
    assert int(pid_text) == state.pid and psutil.pid_exists(state.pid)
    status = manager.status()
    assert status.running and status.state is not None
    assert status.state.version == "7" and status.state.url == f"http://127.0.0.1:{port}"
    assert f"pid={state.pid}" in status.describe() and "version=7" in status.describe()
    assert "listening" in manager.log_file.read_text()

    with pytest.raises(ServerError, match="already runs"):
        manager.start(command(server_script, free_port()), "http://127.0.0.1:1", ready_timeout_s=5)

    assert manager.stop() == state.pid
    assert not psutil.pid_exists(state.pid) or psutil.Process(state.pid).status() == psutil.STATUS_ZOMBIE
    assert not manager.pid_file.exists() and not manager.status().running
    assert manager.stop() is None  # stopping twice is not an error


def test_falls_back_to_models_route_without_readyz(manager: ServerProcess, server_script: Path) -> None:
    port = free_port()
    state = manager.start(command(server_script, port, mode="no-readyz"), f"http://127.0.0.1:{port}", ready_timeout_s=30)
    assert state.model == "drugslm/7"


def test_waits_while_nothing_listens(manager: ServerProcess, server_script: Path) -> None:
    port = free_port()
    state = manager.start(command(server_script, port, mode="slow"), f"http://127.0.0.1:{port}", ready_timeout_s=30)
    assert manager.status().running and state.model == "drugslm/7"


def test_sends_the_bearer_key(manager: ServerProcess, server_script: Path) -> None:
    port = free_port()
    state = manager.start(command(server_script, port, key="k-123"), f"http://127.0.0.1:{port}",
                          api_key="k-123", ready_timeout_s=30)
    assert state.model == "drugslm/7"


def test_wrong_key_fails_at_once_and_stops_the_process(manager: ServerProcess, server_script: Path) -> None:
    port = free_port()
    with pytest.raises(ServerError, match="answered 401.*DRUGSLM_API_KEYS"):
        manager.start(command(server_script, port, key="k-123"), f"http://127.0.0.1:{port}",
                      api_key="wrong", ready_timeout_s=60)
    assert not manager.status().running and not manager.pid_file.exists()


def test_readiness_timeout_stops_the_process(manager: ServerProcess) -> None:
    never_listens = [sys.executable, "-c", "import time; print('loading forever', flush=True); time.sleep(300)"]
    with pytest.raises(ServerError, match="not ready after") as error:
        manager.start(never_listens, f"http://127.0.0.1:{free_port()}", ready_timeout_s=1.5)
    assert "loading forever" in str(error.value)  # the log tail is in the message
    assert not manager.pid_file.exists()
    children = [p for p in psutil.Process().children(recursive=True) if "loading forever" in " ".join(p.cmdline())]
    assert not [p for p in children if p.status() != psutil.STATUS_ZOMBIE]


def test_exit_before_ready_reports_code_and_log(manager: ServerProcess) -> None:
    crashes = [sys.executable, "-c", "import sys; print('no champion to serve', flush=True); sys.exit(3)"]
    with pytest.raises(ServerError, match="exited with code 3") as error:
        manager.start(crashes, f"http://127.0.0.1:{free_port()}", ready_timeout_s=30)
    assert "no champion to serve" in str(error.value)
    assert not manager.status().running


def test_stale_pid_file_is_detected_and_cleared(manager: ServerProcess, server_script: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    manager.state_dir.mkdir(parents=True)
    manager.pid_file.write_text(f"{gone.pid} 12345.0\n")
    status = manager.status()
    assert not status.running and status.stale_pid == gone.pid
    assert "stale" in status.describe() and not manager.pid_file.exists()

    # A live pid with another start time (the pid was reused) is stale too: never signalled.
    manager.pid_file.write_text(f"{psutil.Process().pid} 12345.0\n")
    assert manager.stop() is None and not manager.pid_file.exists()

    port = free_port()  # and a new server starts over the stale file
    manager.pid_file.write_text(f"{gone.pid} 12345.0\n")
    assert manager.start(command(server_script, port), f"http://127.0.0.1:{port}", ready_timeout_s=30).pid


def test_garbage_pid_file_is_an_error_naming_it(manager: ServerProcess) -> None:
    manager.state_dir.mkdir(parents=True)
    manager.pid_file.write_text("not a pid\n")
    with pytest.raises(ServerError, match="serve.pid: not a pid file"):
        manager.status()
    manager.pid_file.unlink()


def test_stop_escalates_to_sigkill(manager: ServerProcess, server_script: Path) -> None:
    port = free_port()
    state = manager.start(command(server_script, port, mode="ignore-term"), f"http://127.0.0.1:{port}", ready_timeout_s=30)
    assert manager.stop(timeout_s=1.0) == state.pid
    assert not psutil.pid_exists(state.pid) or psutil.Process(state.pid).status() == psutil.STATUS_ZOMBIE


def test_api_key_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DRUGSLM_API_KEYS", raising=False)
    monkeypatch.delenv("DRUGSLM_API_KEYS_FILE", raising=False)
    assert api_key_from_env() is None
    keys = tmp_path / "keys"
    keys.write_text("\nfrom-file\nsecond\n")
    monkeypatch.setenv("DRUGSLM_API_KEYS_FILE", str(keys))
    assert api_key_from_env() == "from-file"
    monkeypatch.setenv("DRUGSLM_API_KEYS", " first , second")
    assert api_key_from_env() == "first"


def test_server_command_is_the_foreground_serve() -> None:
    argv = server_command(Path("configs/local.yaml"), "127.0.0.1", 8123)
    assert argv[1:] == ["-m", "drugslm_core.cli", "serve", "--config", "configs/local.yaml", "--host", "127.0.0.1", "--port", "8123"]
    assert server_command(Path("c.yaml"), "h", 1, "4")[-2:] == ["--version", "4"]
    assert server_command(Path("c.yaml"), "h", 1, None, "m", "champion")[-4:] == ["--model-name", "m", "--model-alias", "champion"]
