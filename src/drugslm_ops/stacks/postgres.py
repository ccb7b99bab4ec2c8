"""A throw-away PostgreSQL server on loopback (Debian's ``postgresql`` package), for MLflow's backend store.

Used by the loopback stack (``src/drugslm_ops/stacks/loopback.py``: data under its state dir, stopped by ``down``)
and by the tests (tests/postgres_mlflow.py). ``initdb`` + ``pg_ctl`` from
``/usr/lib/postgresql/<version>/bin``; TCP on 127.0.0.1 only, password (scram-sha-256) auth,
the unix socket inside the data folder. PostgreSQL refuses to run as root: as root, the server
runs as the ``postgres`` system user (or ``nobody``) through ``runuser``, and owns its folder;
when that user cannot reach ``root`` (pytest's folders are 0700 root-owned), the cluster lives in
a fresh ``/tmp/drugslm-postgres-*`` folder instead, named in ``root/cluster-location``.
``make test`` installs the package when ``initdb`` is missing.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

DEFAULT_USER = "drugslm"
DEFAULT_DATABASE = "mlflow"


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's bin folder (the one holding ``initdb``), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _run_as() -> str | None:
    """The system user to run PostgreSQL as when we are root (it refuses to run as root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' user exists to run PostgreSQL as")


class LocalPostgres:
    """One PostgreSQL cluster in ``root`` (``root/data`` + ``root/postgres.log``), serving ``port`` on 127.0.0.1."""

    def __init__(self, root: Path, port: int, password: str, user: str = DEFAULT_USER,
                 database: str = DEFAULT_DATABASE) -> None:
        self.root = Path(root).resolve()
        self.port, self.password, self.user, self.database = port, password, user, database
        bin_dir = postgres_bin()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): "
                               "apt-get install postgresql (`make test` does it)")
        self.bin = bin_dir
        self.run_as = _run_as()
        self.cluster = self._cluster_folder()
        self.data = self.cluster / "data"
        self.log = self.cluster / "postgres.log"

    def _cluster_folder(self) -> Path:
        if not self.run_as:
            return self.root
        self.root.mkdir(parents=True, exist_ok=True)
        reachable = subprocess.run(["runuser", "-u", self.run_as, "--", "test", "-x", str(self.root)],
                                   capture_output=True).returncode == 0
        if reachable:
            return self.root
        location = self.root / "cluster-location"
        if location.is_file():  # this root's cluster, set up by an earlier start
            return Path(location.read_text().strip())
        # A fresh folder, never one derived from the root's name: a cluster left behind by an
        # earlier root at the same path (a removed state folder) has another password.
        folder = Path(tempfile.mkdtemp(prefix="drugslm-postgres-"))
        folder.chmod(0o755)
        location.write_text(f"{folder}\n")
        return folder

    @property
    def uri(self) -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}"

    def _command(self, *args: str) -> list[str]:
        return ["runuser", "-u", self.run_as, "--", *args] if self.run_as else list(args)

    def _own(self, path: Path) -> None:
        if self.run_as:
            entry = pwd.getpwnam(self.run_as)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def init(self) -> None:
        """``initdb`` once (a folder that already holds a cluster is kept, with its data)."""
        if (self.data / "PG_VERSION").is_file():
            return
        self.cluster.mkdir(parents=True, exist_ok=True)
        self.cluster.chmod(0o755)  # the server's user must reach its data folder
        self.data.mkdir(mode=0o700, exist_ok=True)
        password_file = self.cluster / "pwfile"
        password_file.write_text(self.password + "\n")
        for path in (self.data, password_file):
            self._own(path)
        try:
            subprocess.run(
                self._command(str(self.bin / "initdb"), "-D", str(self.data), "-U", self.user, "-E", "UTF8",
                              "--locale=C", "--auth=scram-sha-256", f"--pwfile={password_file}"),
                check=True, capture_output=True, text=True,
            )
        except subprocess.CalledProcessError as error:
            raise RuntimeError(f"initdb {self.data} failed: {error.stderr or error.stdout}") from error
        finally:
            password_file.unlink(missing_ok=True)

    def start(self, timeout_s: float = 60.0) -> str:
        """Start the server (``pg_ctl -w``) and create the database; return its SQLAlchemy URI."""
        self.init()
        if not self.log.exists():
            self.log.touch()
        self._own(self.log)
        options = f"-p {self.port} -h 127.0.0.1 -k {self.data}"
        result = subprocess.run(
            self._command(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options,
                          "-w", "-t", str(int(timeout_s)), "start"),
            capture_output=True, text=True,
        )
        if result.returncode != 0:
            tail = self.log.read_text(errors="replace")[-2000:] if self.log.is_file() else ""
            raise RuntimeError(f"PostgreSQL in {self.data} did not start: {result.stderr or result.stdout}\n{tail}")
        self._create_database(timeout_s)
        return self.uri

    def _create_database(self, timeout_s: float) -> None:
        import psycopg2

        deadline = time.monotonic() + timeout_s
        while True:
            try:
                connection = psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user,
                                              password=self.password, dbname="postgres")
                break
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,))
                if cursor.fetchone() is None:
                    cursor.execute(f'CREATE DATABASE "{self.database}"')
        finally:
            connection.close()

    def running(self) -> bool:
        if not (self.data / "postmaster.pid").is_file():
            return False
        result = subprocess.run(self._command(str(self.bin / "pg_ctl"), "-D", str(self.data), "status"),
                                capture_output=True, text=True)
        return result.returncode == 0

    def stop(self) -> None:
        """``pg_ctl stop -m fast`` (nothing to do when it is not running)."""
        if not self.data.is_dir() or not (self.data / "postmaster.pid").is_file():
            return
        subprocess.run(self._command(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"),
                       capture_output=True, text=True)


    def remove(self) -> None:
        """Stop the server and delete the cluster's folder (its data)."""
        self.stop()
        shutil.rmtree(self.cluster, ignore_errors=True)
        if self.cluster != self.root:
            (self.root / "cluster-location").unlink(missing_ok=True)
