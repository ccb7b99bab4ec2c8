"""The checkpoint mirror: complete copies only, rotation, restore with the best checkpoint re-pointed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drugslm_core.config import TrainingSettings
from drugslm_core.data.formatting import InstructionDataset, InstructionExample
from drugslm_core.modeling.base_model import BaseModelRef
from drugslm_core.modeling.checkpoints import CheckpointStore, local_checkpoint_steps, run_key
from drugslm_core.modeling.launch import checkpoint_uri


def fake_checkpoint(root: Path, step: int, best: str | None = None) -> Path:
    folder = root / f"checkpoint-{step}"
    (folder / "nested").mkdir(parents=True)
    (folder / "adapter_model.safetensors").write_bytes(bytes([step]) * 32)
    (folder / "nested" / "rng.pth").write_bytes(b"rng")
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step, "best_model_checkpoint": best}))
    return folder


def test_upload_then_restore_round_trip(tmp_path: Path) -> None:
    local, remote = tmp_path / "run-a", tmp_path / "store"
    store = CheckpointStore(str(remote))
    assert store.completed_steps() == [] and store.restore(tmp_path / "empty") is None
    store.upload(fake_checkpoint(local, 2))
    store.upload(fake_checkpoint(local, 4, best=str(local / "checkpoint-2")))
    assert store.completed_steps() == [2, 4]

    restored_root = tmp_path / "run-b"
    latest = store.restore(restored_root)
    assert latest == restored_root / "checkpoint-4"
    assert (latest / "adapter_model.safetensors").read_bytes() == bytes([4]) * 32
    assert (latest / "nested" / "rng.pth").read_bytes() == b"rng"
    state = json.loads((latest / "trainer_state.json").read_text())
    assert state["best_model_checkpoint"] == str(restored_root / "checkpoint-2")  # the new local copy
    assert (restored_root / "checkpoint-2").is_dir()


def test_a_copy_without_its_marker_is_never_resumed(tmp_path: Path) -> None:
    store = CheckpointStore(str(tmp_path / "store"))
    store.upload(fake_checkpoint(tmp_path / "run", 2))
    half = tmp_path / "store" / "checkpoint-4"  # what a kill in the middle of an upload leaves
    half.mkdir()
    (half / "adapter_model.safetensors").write_bytes(b"trunc")
    assert store.completed_steps() == [2]
    assert store.restore(tmp_path / "again") == tmp_path / "again" / "checkpoint-2"


def test_prune_follows_local_rotation_and_clear_removes_all(tmp_path: Path) -> None:
    local = tmp_path / "run"
    store = CheckpointStore(str(tmp_path / "store"))
    for step in (2, 4, 6):
        store.upload(fake_checkpoint(local, step))
    (local / "checkpoint-2").rename(tmp_path / "rotated")
    assert local_checkpoint_steps(local) == {4, 6}
    store.prune(local_checkpoint_steps(local))
    assert store.completed_steps() == [4, 6]
    assert not (tmp_path / "store" / "checkpoint-2").exists()
    store.clear()
    assert not (tmp_path / "store").exists()


def test_upload_rejects_other_folders(tmp_path: Path) -> None:
    (tmp_path / "adapter").mkdir()
    with pytest.raises(ValueError, match="not a Trainer checkpoint"):
        CheckpointStore(str(tmp_path / "store")).upload(tmp_path / "adapter")


def _dataset(answer: str) -> InstructionDataset:
    example = InstructionExample(id="1", focus="aspirin", section="uses", question="q?", answer=answer,
                                 prompt="p", completion=answer)
    return InstructionDataset(examples=[example], domain_tag="t", system_prompt="s")


def test_checkpoint_location_is_keyed_by_what_is_trained() -> None:
    base = BaseModelRef(name="m", path="/m", sha256="ab" * 32, source="x")
    settings = TrainingSettings()
    uri = checkpoint_uri("s3://bucket/zenml/", _dataset("a"), base, settings)
    assert uri.startswith("s3://bucket/zenml/checkpoints/")
    assert uri == checkpoint_uri("s3://bucket/zenml", _dataset("a"), base, settings)  # a rerun finds it
    # where checkpoints go or whether a merged copy is exported does not change the run
    assert uri == checkpoint_uri("s3://bucket/zenml", _dataset("a"), base, settings.model_copy(update={"export_merged": True}))
    assert uri != checkpoint_uri("s3://bucket/zenml", _dataset("b"), base, settings)
    assert uri != checkpoint_uri("s3://bucket/zenml", _dataset("a"), base, settings.model_copy(update={"max_steps": 7}))
    explicit = settings.model_copy(update={"checkpoint_uri": "s3://other/ckpt"})
    assert checkpoint_uri("s3://bucket/zenml", _dataset("a"), base, explicit) == "s3://other/ckpt"
    assert run_key(1, "x") == run_key(1, "x") != run_key(2, "x")


def test_nested_folders_round_trip_and_a_half_copy_is_overwritten_in_place(tmp_path: Path) -> None:
    local = tmp_path / "run"
    folder = fake_checkpoint(local, 3)
    (folder / "nested" / "deeper").mkdir()
    (folder / "nested" / "deeper" / "optimizer.pt").write_bytes(b"opt")
    store = CheckpointStore(str(tmp_path / "store"))
    half = tmp_path / "store" / "checkpoint-3"  # a copy of the same step cut off by a kill
    half.mkdir(parents=True)
    (half / "adapter_model.safetensors").write_bytes(b"trunc")
    store.upload(folder)
    assert not (half / "checkpoint-3").exists()  # copied as the folder, not into it
    restored = store.restore(tmp_path / "again")
    assert restored is not None
    files = {p.relative_to(restored).as_posix() for p in restored.rglob("*") if p.is_file()}
    assert files == {"adapter_model.safetensors", "trainer_state.json", "nested/rng.pth",
                     "nested/deeper/optimizer.pt"}
    assert (restored / "adapter_model.safetensors").read_bytes() == bytes([3]) * 32
    assert (restored / "nested" / "deeper" / "optimizer.pt").read_bytes() == b"opt"
