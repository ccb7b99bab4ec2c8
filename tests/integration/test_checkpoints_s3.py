"""The checkpoint mirror against S3 (moto's server on loopback): fsspec's recursive put/get
treat folders differently on S3 (no real directories) than on a local disk, so the same
round trip, half-copy and rotation checks run here too."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from drugslm_core.modeling.checkpoints import CheckpointStore
from tests.unit.test_checkpoints import fake_checkpoint

BUCKET = "drugslm-checkpoints"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=url, **CREDENTIALS).create_bucket(Bucket=BUCKET)
    yield url
    server.stop()


def _store(endpoint: str, prefix: str) -> CheckpointStore:
    import s3fs

    fs = s3fs.S3FileSystem(key="testing", secret="testing", skip_instance_cache=True,
                           client_kwargs={"endpoint_url": endpoint, "region_name": "us-east-1"})
    return CheckpointStore(f"s3://{BUCKET}/{prefix}/", fs=fs)


def test_round_trip_with_nested_folders_and_half_copies(endpoint: str, tmp_path: Path) -> None:
    store = _store(endpoint, "round-trip")
    local = tmp_path / "run-a"
    store.upload(fake_checkpoint(local, 2))
    folder = fake_checkpoint(local, 4, best=str(local / "checkpoint-2"))
    (folder / "nested" / "deeper").mkdir()
    (folder / "nested" / "deeper" / "optimizer.pt").write_bytes(b"opt")
    # a kill in the middle of copying step 6, and an earlier cut-off copy of step 4
    store.fs.pipe_file(f"{store.uri}/checkpoint-6/adapter_model.safetensors", b"trunc")
    store.fs.pipe_file(f"{store.uri}/checkpoint-4/adapter_model.safetensors", b"trunc")
    store.upload(folder)
    assert store.completed_steps() == [2, 4]
    assert not store.fs.exists(f"{store.uri}/checkpoint-4/checkpoint-4")  # copied as, not into

    restored_root = tmp_path / "run-b"
    latest = store.restore(restored_root)
    assert latest == restored_root / "checkpoint-4"
    files = {p.relative_to(latest).as_posix() for p in latest.rglob("*") if p.is_file()}
    assert files == {"adapter_model.safetensors", "trainer_state.json", "nested/rng.pth",
                     "nested/deeper/optimizer.pt"}
    assert (latest / "adapter_model.safetensors").read_bytes() == bytes([4]) * 32
    assert (latest / "nested" / "deeper" / "optimizer.pt").read_bytes() == b"opt"
    state = json.loads((latest / "trainer_state.json").read_text())
    assert state["best_model_checkpoint"] == str(restored_root / "checkpoint-2")
    assert (restored_root / "checkpoint-2" / "nested" / "rng.pth").read_bytes() == b"rng"
    assert not (restored_root / "checkpoint-6").exists()


def test_prune_and_clear(endpoint: str, tmp_path: Path) -> None:
    store = _store(endpoint, "prune")
    for step in (2, 4, 6):
        store.upload(fake_checkpoint(tmp_path / "run", step))
    store.prune({4, 6})
    assert store.completed_steps() == [4, 6]
    assert not store.fs.exists(f"{store.uri}/checkpoint-2")
    store.clear()
    assert store.completed_steps() == []
