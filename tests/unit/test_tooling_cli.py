"""`drugslm stack|schedule|kubeflow` reach the tooling package (drugslm_ops) through its entry points."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from drugslm_core.cli import app


def test_stack_status_goes_to_the_tooling_with_its_own_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The loopback settings live with the tooling; their environment overrides keep their names."""
    monkeypatch.setenv("DRUGSLM_LOOPBACK__STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("DRUGSLM_LOOPBACK__S3_PORT", "1")  # nothing listens on port 1
    monkeypatch.delenv("DRUGSLM_LOOPBACK__POSTGRES_PORT", raising=False)
    result = CliRunner().invoke(app, ["stack", "status"])
    assert result.exit_code == 0, result.output
    assert "s3      pid - stopped, not answering at http://127.0.0.1:1/" in result.output
    assert "postgres stopped on 127.0.0.1:5440" in result.output


def test_stack_rejects_an_unknown_action() -> None:
    result = CliRunner().invoke(app, ["stack", "sideways"])
    assert result.exit_code == 2
    assert "No such command 'sideways'" in result.output


def test_loopback_settings_are_not_in_the_core_settings_tree() -> None:
    from drugslm_core.config import Settings

    assert "loopback" not in Settings.model_fields
