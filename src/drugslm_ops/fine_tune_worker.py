"""The worker process of one fine-tune job (``/v1/fine_tuning/jobs``; the API side is
``drugslm_core.serving.fine_tuning``, which never imports ZenML).

``python -m drugslm_ops.fine_tune_worker --job-dir DIR --pipeline pipelines.training.training_pipeline``,
run in the ZenML repository: it runs the pipeline with ``DIR/run.yaml`` under the run name of
``DIR/job.json`` in its main thread (the local orchestrator executes the steps here; a remote
orchestrator, e.g. Kubernetes, only receives the run, and the worker then follows it until it
ends). A thread writes ``DIR/status.json`` every second from ``Client().get_pipeline_run``: the
run id (the job id), ZenML's status, the tracking URI, the dashboard URL. When ``DIR/cancel``
appears it stops the run the way ``zenml pipeline runs stop`` does (status ``stopping``) and sends
itself SIGTERM: ZenML's step signal handler then marks the running step stopped and raises; a run
left unfinished is then published ``stopped``.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import traceback
from pathlib import Path
from typing import Annotated, Any

import typer

POLL_S = 1.0


class Cancelled(BaseException):
    """SIGTERM outside a step (ZenML's own handler covers the steps)."""


def _write(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    os.replace(tmp, path)


class Status:
    def __init__(self, job_dir: Path) -> None:
        self.path = job_dir / "status.json"
        self.values: dict[str, Any] = {"zenml_status": None, "done": False}
        self.lock = threading.Lock()

    def update(self, **values: Any) -> None:
        with self.lock:
            self.values.update(values, updated_at=int(time.time()))
            _write(self.path, self.values)


def _observe(client: Any, run_name: str, status: Status) -> Any:
    """Read the run (``None`` before it exists) and record it."""
    from zenml.utils.dashboard_utils import get_run_url

    try:
        run = client.get_pipeline_run(run_name, allow_name_prefix_match=False, hydrate=False)
    except KeyError:
        return None
    values: dict[str, Any] = {"run_id": str(run.id), "zenml_status": str(run.status.value)}
    if run.status.is_finished and run.end_time is not None:
        values["finished_at"] = int(run.end_time.timestamp())
    if "dashboard_url" not in status.values:
        try:
            values["dashboard_url"] = get_run_url(run)
        except Exception:  # no dashboard for this store: the link stays empty
            values["dashboard_url"] = None
    status.update(**values)
    return run


def _watch(client: Any, run_name: str, job_dir: Path, status: Status, stop: threading.Event) -> None:
    from zenml.utils.run_utils import stop_run

    cancelling = False
    while not stop.wait(POLL_S):
        try:
            run = _observe(client, run_name, status)
        except Exception as error:  # a transient store error: try again next second
            status.update(watch_error=f"{type(error).__name__}: {error}")
            continue
        if run is not None and (job_dir / "cancel").exists() and not cancelling:
            cancelling = True
            try:
                stop_run(client.get_pipeline_run(run.id), graceful=True)
            except Exception as error:  # e.g. no orchestrator run id yet: the signal still ends the worker
                status.update(stop_error=f"{type(error).__name__}: {error}")
            os.kill(os.getpid(), signal.SIGTERM)


def main(job_dir: Path, pipeline_path: str) -> int:
    """Run one fine-tune job's pipeline and keep its status file up to date; 0 when it completed."""
    run_name = json.loads((job_dir / "job.json").read_text())["run_name"]
    status = Status(job_dir)
    status.update(run_name=run_name)

    def on_sigterm(signum: int, frame: Any) -> None:
        # Inside a step ZenML's handler is installed and calls this one after it has marked the step
        # stopped and raised RunStoppedException: raising here would replace that exception with one
        # ZenML takes for a failure and retries (the run's retry config). Between steps: end the run.
        if signal.getsignal(signal.SIGTERM) is on_sigterm:
            raise Cancelled("cancelled")

    signal.signal(signal.SIGTERM, on_sigterm)
    if (job_dir / "cancel").exists():
        status.update(done=True, error="cancelled before the run started")
        return 0

    from zenml.client import Client
    from zenml.enums import ExecutionStatus
    from zenml.orchestrators.publish_utils import publish_pipeline_run_status_update

    client = Client()
    tracker = client.active_stack.experiment_tracker
    status.update(tracking_uri=tracker.get_tracking_uri() if tracker and hasattr(tracker, "get_tracking_uri") else None,
                  stack=client.active_stack.name)
    from drugslm_ops import repository_pipeline

    pipeline = repository_pipeline(pipeline_path)

    stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(client, run_name, job_dir, status, stop), daemon=True)
    watcher.start()
    error = None
    try:
        pipeline.with_options(config_path=str(job_dir / "run.yaml"), run_name=run_name)()
        # A remote orchestrator returns once the run is submitted: follow it to its end.
        while (run := _observe(client, run_name, status)) is None or not run.status.is_finished:
            time.sleep(POLL_S * 5)
    except BaseException as exception:  # the run failed or was cancelled: ZenML's status says which
        error = "".join(traceback.format_exception_only(exception)).strip()[-2000:]
        traceback.print_exc()
    stop.set()
    watcher.join(10)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the final status must be written whole
    run = _observe(client, run_name, status)
    if run is not None and not run.status.is_finished and (job_dir / "cancel").exists():
        publish_pipeline_run_status_update(run.id, ExecutionStatus.STOPPED, status_reason="fine-tune job cancelled")
        run = _observe(client, run_name, status)
    status.update(done=True, error=error)
    print(f"fine-tune job {run_name}: ZenML run {getattr(run, 'id', None)} ended "
          f"{getattr(getattr(run, 'status', None), 'value', 'without a run')}", flush=True)
    return 0 if run is not None and run.status == ExecutionStatus.COMPLETED else 1


def command(
    job_dir: Annotated[Path, typer.Option(help="the job's folder (job.json, run.yaml; status.json is written here)")],
    pipeline: Annotated[str, typer.Option(help="import path of the pipeline object")],
) -> None:
    """Run one fine-tune job (started by the server's job API, never by hand)."""
    raise typer.Exit(main(job_dir, pipeline))


if __name__ == "__main__":
    typer.run(command)
