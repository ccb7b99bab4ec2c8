"""A throw-away PostgreSQL on loopback and an MLflow server whose backend store it is (src/drugslm_ops/stacks/postgres.py).

The cluster is set up in a fresh 0700 folder under /tmp; as root, PostgreSQL runs as the
``postgres`` user, which cannot enter it, so src/drugslm_ops/stacks/postgres.py puts the cluster in
a fresh ``/tmp/drugslm-postgres-*`` folder instead. Both servers are stopped and both folders removed on exit.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from drugslm_ops.stacks.postgres import LocalPostgres
from tests.servers import free_port


@dataclass
class PostgresMlflow:
    postgres: LocalPostgres
    tracking_uri: str
    artifacts: Path


@contextlib.contextmanager
def postgres_mlflow_server(timeout_s: float = 180.0) -> Iterator[PostgresMlflow]:
    root = Path(tempfile.mkdtemp(prefix="drugslm-pg-"))
    postgres = LocalPostgres(root / "postgres", free_port(), secrets.token_hex(12))
    server: subprocess.Popen[bytes] | None = None
    try:
        database = postgres.start()
        port = free_port()
        artifacts = root / "mlartifacts"
        log = (root / "mlflow.log").open("wb")
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
             "--workers", "1", "--backend-store-uri", database, "--artifacts-destination", artifacts.as_uri()],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout_s
        while True:
            assert server.poll() is None, (root / "mlflow.log").read_text()[-3000:]
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the MLflow server did not answer /health in time"
            time.sleep(0.5)
        yield PostgresMlflow(postgres, url, artifacts)
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(10)
        postgres.remove()
        shutil.rmtree(root, ignore_errors=True)
