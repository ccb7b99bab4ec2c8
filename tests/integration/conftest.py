"""Fixtures shared by the integration tests."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def store_dir() -> Iterator[Path]:
    """A folder of its own in the active (local) artifact store, removed afterwards."""
    from zenml.client import Client

    root = Path(Client().active_stack.artifact_store.path) / "drugslm-integration-tests" / uuid.uuid4().hex
    root.mkdir(parents=True)
    yield root
    shutil.rmtree(root, ignore_errors=True)
