"""A training run killed with SIGKILL mid-training, started again with the same job, resumes
from its last complete checkpoint in the store and finishes.

The job runs through the worker entry point the finetune step uses under accelerate
(``python -m drugslm_core.modeling.launch``), in its own process, so it can be killed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from drugslm_core.config import BaseModelSettings, TrainingSettings
from drugslm_core.modeling.base_model import provision_base_model
from drugslm_core.modeling.checkpoints import CheckpointStore
from drugslm_core.modeling.launch import OUTCOME_FILE, TrainingJob, write_job
from drugslm_core.modeling.training import TrainingOutcome
from tests.lora_adapters import sample_eval_split

ROOT = Path(__file__).resolve().parents[2]
MAX_STEPS = 10


def _start(job_file: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "drugslm_core.modeling.launch", str(job_file)],
        stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )


def test_sigkill_then_resume(tmp_path: Path) -> None:
    base = provision_base_model(BaseModelSettings())
    data = sample_eval_split(base)
    store = CheckpointStore(str(tmp_path / "artifact-store" / "checkpoints" / "run"))
    settings = TrainingSettings(max_steps=MAX_STEPS, eval_steps=2, logging_steps=1, max_seq_length=128,
                                per_device_batch_size=2, warmup_steps=1, early_stopping_patience=None)
    job = TrainingJob(train=data.model_copy(update={"examples": data.examples[:40]}),
                      validation=data.model_copy(update={"examples": data.examples[40:]}),
                      base=base, settings=settings, output_dir=tmp_path / "first", checkpoints=store)
    job_file = write_job(job, tmp_path / "job")

    first = _start(job_file, tmp_path / "first.log")
    deadline = time.monotonic() + 600
    while not store.completed_steps():
        assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint within 10 minutes"
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert first.returncode == -signal.SIGKILL
    killed_at = store.completed_steps()[-1]
    assert 0 < killed_at < MAX_STEPS
    assert not (tmp_path / "job" / OUTCOME_FILE).exists()

    # Same job, fresh local folder (a new pod would have nothing on disk): only the store survives.
    write_job(job.model_copy(update={"output_dir": tmp_path / "second"}), tmp_path / "job")
    second = _start(job_file, tmp_path / "second.log")
    assert second.wait(timeout=900) == 0, (tmp_path / "second.log").read_text()[-3000:]
    outcome = TrainingOutcome.model_validate_json((tmp_path / "job" / OUTCOME_FILE).read_text())
    assert outcome.resumed_from_step >= killed_at > 0
    assert outcome.steps == MAX_STEPS
    # One unbroken history: the checkpoint's trainer state carried the killed run's logs over.
    assert [step for step, _ in outcome.loss_history] == list(range(1, MAX_STEPS + 1))
    assert [step for step, _ in outcome.eval_history] == list(range(2, MAX_STEPS + 1, 2))
    assert "Restored" in (tmp_path / "second.log").read_text()
    assert store.completed_steps() == []  # finished: the store is cleaned up
    state = json.loads((Path(outcome.adapter_dir) / "drugslm_adapter.json").read_text())
    assert state["training"]["max_steps"] == MAX_STEPS
