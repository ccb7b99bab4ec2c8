"""Trainer checkpoints mirrored to durable storage, so a killed run resumes where it stopped.

The Trainer writes checkpoints to a local folder (it cannot write to S3 itself);
after every save, the new checkpoint is copied to ``uri`` on an fsspec
filesystem — the artifact store's own S3/GCS/local filesystem in a pipeline run —
and a ``checkpoint-<step>.complete`` marker is written last. A checkpoint without
its marker (a copy cut off by a kill) is never resumed from. Checkpoints the
Trainer rotated away locally are removed remotely too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
_MARKER = re.compile(r"^checkpoint-(\d+)\.complete$")
TRAINER_STATE = "trainer_state.json"


def run_key(*parts: Any) -> str:
    """A short stable hash of what determines a training run (settings, data, base model)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


class CheckpointStore:
    """A folder of Trainer checkpoints on any fsspec filesystem (``file``, ``s3``, ``gs``…)."""

    def __init__(self, uri: str, fs: Any | None = None) -> None:
        if fs is None:
            import fsspec

            fs, _ = fsspec.core.url_to_fs(uri)
        self.uri = uri.rstrip("/")
        self.fs = fs

    def __repr__(self) -> str:
        return f"CheckpointStore({self.uri!r})"

    def _path(self, *names: str) -> str:
        return "/".join([self.uri, *names])

    def completed_steps(self) -> list[int]:
        """Steps of the checkpoints whose copy finished, oldest first."""
        if not self.fs.exists(self.uri):
            return []
        names = (Path(str(entry)).name for entry in self.fs.ls(self.uri, detail=False))
        return sorted(int(m.group(1)) for m in map(_MARKER.match, names) if m)

    def upload(self, checkpoint_dir: Path) -> None:
        """Copy one local ``checkpoint-<step>`` folder, then write its completion marker."""
        name = checkpoint_dir.name
        if not _CHECKPOINT.match(name):
            raise ValueError(f"{checkpoint_dir} is not a Trainer checkpoint folder (checkpoint-<step>)")
        # The trailing "/" copies the folder's contents *as* checkpoint-<step>, whether or not
        # a copy cut off by a kill already left that folder there (without it, fsspec would
        # nest the second copy inside the first). put returns only once every file is stored,
        # so the marker below is written last.
        self.fs.put(f"{checkpoint_dir}/", self._path(name), recursive=True)
        self.fs.pipe_file(self._path(f"{name}.complete"), b"")

    def prune(self, keep_steps: set[int]) -> None:
        """Remove the stored checkpoints whose step is not in ``keep_steps`` (marker first)."""
        for step in self.completed_steps():
            if step not in keep_steps:
                self.fs.rm_file(self._path(f"checkpoint-{step}.complete"))
                if self.fs.exists(self._path(f"checkpoint-{step}")):
                    self.fs.rm(self._path(f"checkpoint-{step}"), recursive=True)

    def restore(self, local_root: Path) -> Path | None:
        """Download every completed checkpoint into ``local_root``; return the latest, or ``None``.

        The trainer state records the best checkpoint by its old local path; it is
        pointed at the downloaded copy so best-checkpoint selection survives the restart.
        """
        steps = self.completed_steps()
        for step in steps:
            name = f"checkpoint-{step}"
            # trailing "/": the remote folder's contents land *as* local_root/checkpoint-<step>
            self.fs.get(f"{self._path(name)}/", str(local_root / name), recursive=True)
        if not steps:
            return None
        latest = local_root / f"checkpoint-{steps[-1]}"
        state_file = latest / TRAINER_STATE
        state = json.loads(state_file.read_text())
        if state.get("best_model_checkpoint"):
            state["best_model_checkpoint"] = str(local_root / Path(state["best_model_checkpoint"]).name)
            state_file.write_text(json.dumps(state, indent=2))
        logger.info("Restored %d checkpoint(s) from %s; resuming from step %d", len(steps), self.uri, steps[-1])
        return latest

    def clear(self) -> None:
        if self.fs.exists(self.uri):
            self.fs.rm(self.uri, recursive=True)


def local_checkpoint_steps(output_dir: Path) -> set[int]:
    if not output_dir.is_dir():
        return set()
    return {int(m.group(1)) for m in (_CHECKPOINT.match(p.name) for p in output_dir.iterdir()) if m}


def mirror_callback(store: CheckpointStore) -> Any:
    """A ``TrainerCallback`` that copies each new checkpoint to ``store`` (main process only)."""
    from transformers import TrainerCallback

    class MirrorCheckpoints(TrainerCallback):
        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if not state.is_world_process_zero:
                return
            output_dir = Path(args.output_dir)
            store.upload(output_dir / f"checkpoint-{state.global_step}")
            store.prune(local_checkpoint_steps(output_dir))

    return MirrorCheckpoints()
