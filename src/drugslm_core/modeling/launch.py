"""Where training runs: in this process, or in ``accelerate launch`` workers (one per GPU).

A training job (data, base model, settings, checkpoint location) is written to a
folder; ``python -m drugslm_core.modeling.launch <job>`` runs it and the main
process writes the outcome beside it. ``accelerate launch --module`` starts that
same entry point in every worker, so multi-GPU is a configuration switch
(``training.accelerate``), not other code: the Trainer picks up the distributed
environment accelerate sets.
"""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from drugslm_core.config import AccelerateSettings, TrainingSettings
from drugslm_core.data.formatting import InstructionDataset
from drugslm_core.modeling.base_model import BaseModelRef
from drugslm_core.modeling.checkpoints import CheckpointStore, run_key
from drugslm_core.modeling.training import TrainingOutcome, finetune

JOB_FILE = "job.pkl"
OUTCOME_FILE = "outcome.json"


class TrainingJob(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    train: InstructionDataset
    validation: InstructionDataset | None
    base: BaseModelRef
    settings: TrainingSettings
    output_dir: Path
    checkpoints: CheckpointStore | None = None
    report_to: str = "none"

    def run(self) -> TrainingOutcome:
        return finetune(
            self.train, self.base, self.settings, self.output_dir, self.validation, self.checkpoints, self.report_to
        )


def checkpoint_uri(root: str, train: InstructionDataset, base: BaseModelRef, settings: TrainingSettings) -> str:
    """``settings.checkpoint_uri`` or ``<root>/checkpoints/<key>``, the key hashing what is trained
    (training settings, train split, base model): the same config finds the same checkpoints."""
    if settings.checkpoint_uri:
        return settings.checkpoint_uri
    key = run_key(settings.run_key_fields(), train.fingerprint(), base.sha256)
    return f"{root.rstrip('/')}/checkpoints/{key}"


def write_job(job: TrainingJob, job_dir: Path) -> Path:
    job_dir.mkdir(parents=True, exist_ok=True)
    path = job_dir / JOB_FILE
    # pickle, not JSON: the checkpoint store carries its fsspec filesystem (with its credentials
    # source) into the worker processes. The file stays in a private temporary folder.
    path.write_bytes(pickle.dumps(job))
    return path


def launch_argv(accelerate: AccelerateSettings, job_file: Path, cuda_available: bool) -> list[str]:
    """The ``accelerate launch`` arguments that run ``job_file`` (without the ``accelerate launch`` words)."""
    argv = ["--num_processes", str(accelerate.num_processes), "--num_machines", "1"]
    if accelerate.multi_gpu:
        argv.append("--multi_gpu")
    if not cuda_available:
        argv.append("--cpu")
    argv += ["--mixed_precision", accelerate.mixed_precision if cuda_available else "no"]
    argv += ["--main_process_port", str(accelerate.main_process_port), "--dynamo_backend", "no"]
    argv += [*accelerate.extra_args, "--module", "drugslm_core.modeling.launch", str(job_file)]
    return argv


def launch_plan(accelerate: AccelerateSettings, job_file: Path, cuda_available: bool) -> Any:
    """The parsed ``accelerate launch`` namespace for these settings: what would run, checked by accelerate's parser."""
    from accelerate.commands.launch import launch_command_parser

    return launch_command_parser().parse_args(launch_argv(accelerate, job_file, cuda_available))


def run_training(job: TrainingJob, job_dir: Path) -> TrainingOutcome:
    """Run ``job`` here, or under ``accelerate launch`` when ``settings.accelerate.enabled``."""
    accelerate = job.settings.accelerate
    if not accelerate.enabled:
        return job.run()
    import torch
    from accelerate.commands.launch import launch_command

    # Workers are fresh processes without the step's MLflow run: the step logs their outcome.
    job_file = write_job(job.model_copy(update={"report_to": "none"}), job_dir)
    launch_command(launch_plan(accelerate, job_file, torch.cuda.is_available()))
    outcome_file = job_dir / OUTCOME_FILE
    if not outcome_file.is_file():
        raise RuntimeError(f"accelerate launch finished without writing {outcome_file}")
    return TrainingOutcome.model_validate_json(outcome_file.read_text())


def train_with_checkpoints(
    train: InstructionDataset,
    validation: InstructionDataset | None,
    base: BaseModelRef,
    settings: TrainingSettings,
    artifact_root: str,
    filesystem: Any = None,
    report_to: str = "none",
) -> TrainingOutcome:
    """Train with checkpoints mirrored under ``artifact_root`` (see :func:`checkpoint_uri`) through
    ``filesystem`` (an fsspec filesystem for remote stores; ``None``: a local folder).

    The weights are written to a private temporary folder that is removed when the process
    ends: whoever stores the outcome (the finetune step's materializer) copies them out after
    this returns.
    """
    import atexit
    import shutil
    import tempfile

    checkpoints = CheckpointStore(checkpoint_uri(artifact_root, train, base, settings), filesystem)
    work = Path(tempfile.mkdtemp(prefix="drugslm-train-"))
    atexit.register(shutil.rmtree, work, True)
    job = TrainingJob(train=train, validation=validation, base=base, settings=settings, output_dir=work / "out",
                      checkpoints=checkpoints, report_to=report_to)
    return run_training(job, work / "job")


def main(argv: list[str] | None = None) -> None:
    """Worker entry point: ``python -m drugslm_core.modeling.launch <job folder>/job.pkl``."""
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    job_file = Path((argv if argv is not None else sys.argv[1:])[0])
    job: TrainingJob = pickle.loads(job_file.read_bytes())
    outcome = job.run()
    if int(os.environ.get("RANK", "0")) == 0:
        (job_file.parent / OUTCOME_FILE).write_text(outcome.model_dump_json(indent=2))


if __name__ == "__main__":
    main()
