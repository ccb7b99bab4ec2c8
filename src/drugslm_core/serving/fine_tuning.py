"""Fine-tune jobs: start a training pipeline run in a worker process, follow it, cancel it.

No ZenML here (the core never imports it): a job is a folder under ``fine_tuning.state_dir``
with ``job.json`` (the request, the run name, the worker's pid), ``run.yaml`` (the run config
with the job's overrides and run name), ``worker.log`` and ``status.json``, which the worker
(``src/drugslm_ops/fine_tune_worker.py``, run as ``python -m`` in the ZenML repository) writes from
``Client().get_pipeline_run``: the run id, ZenML's status, the tracking URI, the dashboard URL.
Metrics and the gate's decision are read from MLflow (the run the stack's tracker opened under
the job's run name). A cancel is a ``cancel`` file the worker watches (it stops the ZenML run
and exits); past ``cancel_grace_s`` the worker's process group is killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from drugslm_core.config import FineTuningSettings, Settings
from drugslm_core.serving.model import model_id

# ZenML's ExecutionStatus values (zenml.enums) mapped onto OpenAI's job statuses.
_QUEUED = {"initializing", "provisioning", "queued"}
_CANCELLED = {"stopped", "cancelled"}
_FINISHED = {"completed", "failed", "cached", "stopped", "cancelled"}
TERMINAL = {"succeeded", "failed", "cancelled"}


class JobError(Exception):
    """A request the jobs API refuses: HTTP status, OpenAI error type/code/param."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.type, self.code, self.param = status, type_, code, param


class JobRequest(BaseModel):
    """``POST /v1/fine_tuning/jobs``: OpenAI's fields where they apply, plus ``config`` overrides."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    """The model family to fine-tune: omitted, the registered model name or the base model source."""
    training_file: str | None = None
    """A data file or folder on the server, under ``fine_tuning.allowed_data_roots``; it replaces ``data.files``."""
    suffix: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")
    """Goes into the ZenML run name (``fine-tune-<suffix>-<hex>``); the registry names versions itself."""
    config: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Settings overrides ``{section: {field: value}}``, only keys in ``fine_tuning.overridable``."""
    seed: int | None = None
    """``training.seed``."""


def _now() -> int:
    return int(time.time())


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    os.replace(tmp, path)  # readers never see half a file


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def pid_alive(pid: int | None) -> bool:
    """Whether ``pid`` is a live process (a zombie counts as gone)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[0] != "Z"
    return True


def openai_status(zenml_status: str | None, worker_done: bool, cancel_requested: bool) -> str:
    """OpenAI's status of a job from ZenML's run status and whether the worker has ended."""
    if zenml_status == "completed":
        return "succeeded"
    if zenml_status in _CANCELLED:
        return "cancelled"
    if zenml_status == "failed":
        return "cancelled" if cancel_requested else "failed"
    if worker_done:  # the worker is gone and the run never finished (killed): what was asked decides
        return "cancelled" if cancel_requested else "failed"
    if zenml_status is None:
        return "validating_files"
    if zenml_status in _QUEUED:
        return "queued"
    return "running"


class FineTuneJobs:
    """The jobs of one API process (their state lives on disk: a restarted server still knows them)."""

    def __init__(self, settings: FineTuningSettings, env: dict[str, str] | None = None,
                 python: str = sys.executable) -> None:
        self.settings = settings
        self.root = settings.project_root.resolve()
        self.state_dir = self._under_root(settings.state_dir)
        self.env = dict(os.environ if env is None else env)
        self.python = python
        self._workers: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    def _under_root(self, path: Path) -> Path:
        return path if path.is_absolute() else self.root / path

    # --- creating ------------------------------------------------------------------------
    def validate(self, request: JobRequest) -> tuple[dict[str, Any], Settings]:
        """The job's run config (the base one with the request merged in), checked by the settings model."""
        run_config = self._under_root(self.settings.run_config)
        if not run_config.is_file():
            raise JobError(500, f"the server's run config {run_config} does not exist (fine_tuning.run_config)",
                           "server_error")
        document = yaml.safe_load(run_config.read_text()) or {}
        values = document.setdefault("parameters", {}).setdefault("config", {})
        if not isinstance(values, dict):
            raise JobError(500, f"{run_config}: parameters.config must be a mapping to take job overrides", "server_error")
        allowed = set(self.settings.overridable)
        overrides = {section: dict(fields) for section, fields in request.config.items()}
        if request.seed is not None:
            overrides.setdefault("training", {})["seed"] = request.seed
        for section, fields in overrides.items():
            if not isinstance(fields, dict):
                raise JobError(400, f"config.{section} must be a mapping of field: value", param=f"config.{section}")
            for field, value in fields.items():
                key = f"{section}.{field}"
                if key not in allowed:
                    raise JobError(400, f"config.{key} may not be set by a job; allowed: {', '.join(sorted(allowed))}",
                                   code="override_not_allowed", param=f"config.{key}")
                values.setdefault(section, {})[field] = value
        if request.training_file is not None:
            values.setdefault("data", {})["files"] = [{"path": str(self._training_file(request.training_file))}]
        try:
            settings = Settings(**values)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(map(str, first["loc"]))
            raise JobError(400, f"invalid settings: config.{where}: {first['msg']}", param=f"config.{where}") from error
        if request.model not in {None, "", settings.registry.model_name, settings.base_model.source}:
            raise JobError(400, f"model {request.model!r} cannot be fine-tuned here; jobs train "
                           f"{settings.registry.model_name!r} on {settings.base_model.source!r}", param="model",
                           code="model_not_found")
        return document, settings

    def _training_file(self, reference: str) -> Path:
        """A path the server may read: it exists and resolves (links followed) under an allowed root."""
        path = Path(reference)
        resolved = (path if path.is_absolute() else self.root / path).resolve()
        roots = [self._under_root(root).resolve() for root in self.settings.allowed_data_roots]
        if not any(resolved.is_relative_to(root) for root in roots):
            raise JobError(400, f"training_file {reference!r} is outside the data folders this server may read "
                           f"({', '.join(map(str, roots))})", param="training_file", code="training_file_not_allowed")
        if not resolved.exists():
            raise JobError(400, f"training_file {reference!r} does not exist on the server", param="training_file",
                           code="training_file_not_found")
        return resolved

    def create(self, request: JobRequest) -> dict[str, Any]:
        """Validate, start the worker (429 at ``max_concurrent``), wait for the ZenML run; the job."""
        document, settings = self.validate(request)
        with self._lock:
            active = [job for job in self._jobs() if not job["_worker_done"]]
            if len(active) >= self.settings.max_concurrent:
                raise JobError(429, f"{len(active)} fine-tune job(s) running, the most this server runs at once "
                               f"(fine_tuning.max_concurrent={self.settings.max_concurrent}); retry when one ends",
                               "rate_limit_error", "too_many_jobs")
            run_name = "-".join(filter(None, ["fine-tune", request.suffix, uuid.uuid4().hex[:10]]))
            job_dir = self.state_dir / run_name
            job_dir.mkdir(parents=True)
            document["run_name"] = run_name
            (job_dir / "run.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
            spec = {
                "run_name": run_name, "created_at": _now(), "training_file": request.training_file,
                "suffix": request.suffix, "model": settings.base_model.source,
                "registered_model": settings.registry.model_name,
                "hyperparameters": {"n_epochs": "auto", "batch_size": settings.training.per_device_batch_size,
                                    "learning_rate_multiplier": "auto", "max_steps": settings.training.max_steps,
                                    "learning_rate": settings.training.learning_rate},
                "seed": settings.training.seed, "overrides": request.config,
            }
            _write_json(job_dir / "job.json", {**spec, "pid": None})  # before the worker starts: it reads it
            log = (job_dir / "worker.log").open("ab")
            env = {**self.env, "PYTHONPATH": os.pathsep.join(filter(None, [str(self.root), self.env.get("PYTHONPATH")]))}
            worker = subprocess.Popen(
                [self.python, "-m", self.settings.worker_module, "--job-dir", str(job_dir),
                 "--pipeline", self.settings.pipeline],
                cwd=self.root, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: a cancel can end it and its children
            )
            log.close()
            self._workers[run_name] = worker
            _write_json(job_dir / "job.json", {**spec, "pid": worker.pid})
        return self._wait_for_run(job_dir, worker)

    def _wait_for_run(self, job_dir: Path, worker: subprocess.Popen[bytes]) -> dict[str, Any]:
        deadline = time.monotonic() + self.settings.start_timeout_s
        while time.monotonic() < deadline:
            status = _read_json(job_dir / "status.json")
            if status.get("run_id"):
                return self._view(self._job(job_dir))
            if worker.poll() is not None:
                raise JobError(500, f"the worker ended ({worker.returncode}) before the ZenML run started: "
                               f"{status.get('error') or _tail(job_dir / 'worker.log')}", "server_error", "worker_failed")
            time.sleep(0.5)
        self._kill(worker)
        raise JobError(503, f"the ZenML run did not start within {self.settings.start_timeout_s:g} s "
                       f"(fine_tuning.start_timeout_s); log: {job_dir / 'worker.log'}", "server_error", "start_timeout")

    # --- reading -------------------------------------------------------------------------
    def _job(self, job_dir: Path) -> dict[str, Any]:
        """``job.json`` with the worker's ``status.json`` (``_status``) and whether the worker has ended."""
        spec = _read_json(job_dir / "job.json")
        if not spec:
            return {}
        status = _read_json(job_dir / "status.json")
        self._reap(spec["run_name"])  # a finished worker must not linger as a zombie
        spec["_worker_done"] = bool(status.get("done")) or not pid_alive(spec.get("pid"))
        spec["_dir"], spec["_status"] = job_dir, status
        return spec

    def _jobs(self) -> list[dict[str, Any]]:
        if not self.state_dir.is_dir():
            return []
        jobs = [job for job in map(self._job, self.state_dir.iterdir()) if job]
        return sorted(jobs, key=lambda job: (job["created_at"], job["run_name"]), reverse=True)

    def _find(self, job_id: str) -> dict[str, Any]:
        for job in self._jobs():
            if job["_status"].get("run_id") == job_id:
                return job
        raise JobError(404, f"no fine-tune job {job_id!r}", code="job_not_found", param="id")

    def get(self, job_id: str) -> dict[str, Any]:
        return self._view(self._find(job_id))

    def list(self, limit: int = 20, after: str | None = None) -> dict[str, Any]:
        jobs = [job for job in self._jobs() if job["_status"].get("run_id")]
        if after is not None:
            ids = [job["_status"]["run_id"] for job in jobs]
            jobs = jobs[ids.index(after) + 1:] if after in ids else []
        page = jobs[:limit]
        return {"object": "list", "data": [self._view(job, with_mlflow=False) for job in page],
                "has_more": len(jobs) > limit}

    def _view(self, job: dict[str, Any], with_mlflow: bool = True) -> dict[str, Any]:
        job_dir: Path = job["_dir"]
        status = job["_status"]
        cancel_requested = (job_dir / "cancel").exists()
        state = openai_status(status.get("zenml_status"), job["_worker_done"], cancel_requested)
        error = None
        if state == "failed":
            message = status.get("error") or f"the worker ended before the run finished; log: {job_dir / 'worker.log'}"
            error = {"code": "run_failed", "message": message, "param": None}
        finished_at = status.get("finished_at") or (status.get("updated_at") if state in TERMINAL else None)
        tracking = _mlflow_view(status.get("tracking_uri"), job["run_name"], self.settings.mlflow_ui_url) \
            if with_mlflow and status.get("tracking_uri") else {}
        promoted = tracking.get("gate", {}).get("promote") is True
        return {
            "object": "fine_tuning.job",
            "id": status.get("run_id"),
            "status": state,
            "created_at": job["created_at"],
            "finished_at": finished_at,
            "model": job["model"],
            "fine_tuned_model": tracking.get("registered_version") if promoted else None,
            "organization_id": "drugslm",
            "result_files": [],
            "training_file": job.get("training_file") or "",
            "validation_file": None,
            "suffix": job.get("suffix"),
            "seed": job.get("seed", 0),
            "hyperparameters": job.get("hyperparameters", {}),
            "trained_tokens": None,
            "error": error,
            # drugslm's own fields
            "run_name": job["run_name"],
            "zenml_status": status.get("zenml_status"),
            "metrics": tracking.get("metrics", {}),
            "gate": tracking.get("gate"),
            "registered_version": tracking.get("registered_version"),
            "links": {"dashboard": status.get("dashboard_url"), "mlflow": tracking.get("mlflow_url")},
            "overrides": job.get("overrides", {}),
            "worker": {"pid": job.get("pid"), "alive": not job["_worker_done"] and pid_alive(job.get("pid")),
                       "log": str(job_dir / "worker.log")},
            **({"mlflow_error": tracking["error"]} if "error" in tracking else {}),
        }

    # --- cancelling ----------------------------------------------------------------------
    def cancel(self, job_id: str) -> dict[str, Any]:
        """Ask the worker to stop the run; kill its process group past ``cancel_grace_s``; the job."""
        job = self._find(job_id)
        job_dir: Path = job["_dir"]
        if job["_worker_done"]:
            view = self._view(job)
            if view["status"] in TERMINAL:
                raise JobError(400, f"job {job_id} has already {view['status']}", code="job_finished", param="id")
        (job_dir / "cancel").write_text(datetime.now(UTC).isoformat())
        pid = job.get("pid")
        deadline = time.monotonic() + self.settings.cancel_grace_s
        while pid_alive(pid) and time.monotonic() < deadline:
            self._reap(job["run_name"])
            time.sleep(0.5)
        if pid and pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(pid), signal.SIGKILL)
            deadline = time.monotonic() + 10
            while pid_alive(pid) and time.monotonic() < deadline:
                self._reap(job["run_name"])
                time.sleep(0.2)
        self._reap(job["run_name"])
        return self._view(self._job(job_dir))

    def _reap(self, run_name: str) -> None:
        worker = self._workers.get(run_name)
        if worker is not None:
            worker.poll()

    @staticmethod
    def _kill(worker: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)


def _tail(path: Path, chars: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except FileNotFoundError:
        return "(no log)"


def _mlflow_view(tracking_uri: str, run_name: str, ui_url: str | None) -> dict[str, Any]:
    """Metrics so far, the gate's decision and the registered version, from the run's MLflow run."""
    try:
        import mlflow

        client = mlflow.MlflowClient(tracking_uri=tracking_uri)
        experiments = [e.experiment_id for e in client.search_experiments()]
        if not experiments:
            return {}
        runs = client.search_runs(experiments, filter_string=f"tags.mlflow.runName = '{run_name}'",
                                  order_by=["attributes.start_time ASC"], max_results=5)
        if not runs:
            return {}
        run = runs[0]
        tags = run.data.tags
        view: dict[str, Any] = {"metrics": dict(sorted(run.data.metrics.items()))}
        if "gate.promote" in tags:
            view["gate"] = {
                "promote": tags["gate.promote"] == "true",
                "primary_metric": tags.get("gate.primary_metric"),
                "decision": tags.get("promotion_decision"),
                "explanation": tags.get("gate.explanation"),
            }
        versions = client.search_model_versions(f"run_id='{run.info.run_id}'")
        if versions:
            version = max(versions, key=lambda v: int(v.version))
            view["registered_version"] = model_id(version.name, str(version.version))
        base = ui_url or (tracking_uri if re.match(r"https?://", tracking_uri) else None)
        if base:
            view["mlflow_url"] = f"{base.rstrip('/')}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
        else:
            view["mlflow_url"] = f"{tracking_uri} experiment {run.info.experiment_id} run {run.info.run_id}"
        return view
    except Exception as error:  # MLflow unreachable: the job is still reported, without its metrics
        return {"error": f"{type(error).__name__}: {error}"}
