"""Champion alias history and rollback over a real MLflow registry (SQLite in tmp_path).

The versions hold a tiny stand-in file, not an adapter: alias moves do not look
inside the artifacts. The CLI is exercised through typer's runner, in process.
"""

from __future__ import annotations

import json

import mlflow
import pytest
from typer.testing import CliRunner

from drugslm_core.cli import app
from drugslm_core.registry.aliases import (
    AliasMove,
    champion_stack,
    history_tag,
    promote_version,
    read_history,
    rollback_alias,
    rollback_target,
)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """One SQLite store for the module (creating one costs seconds); each test has its own model."""
    root = tmp_path_factory.mktemp("rollback")
    previous = mlflow.get_tracking_uri()
    uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("rollback-test")
    (root / "adapter").mkdir()
    (root / "adapter" / "adapter_config.json").write_text("{}")
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(root / "adapter"), artifact_path="adapter")
    yield uri, run.info.run_id
    mlflow.set_tracking_uri(previous)


@pytest.fixture()
def registry(store, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """A registered model with three versions, named after the test."""
    uri, run_id = store
    model = f"drugslm-{request.node.name}".replace("_", "-")[:60]
    client = mlflow.MlflowClient()
    client.create_registered_model(model)
    for _ in range(3):
        client.create_model_version(model, source=f"runs:/{run_id}/adapter", run_id=run_id)
    return client, uri, model


def _champion(client, model: str) -> str:  # type: ignore[no-untyped-def]
    return str(client.get_model_version_by_alias(model, "champion").version)


def test_rollback_restores_the_previous_champion_step_by_step(registry) -> None:  # type: ignore[no-untyped-def]
    client, _, model = registry
    for version in ("1", "2", "3"):
        promote_version(client, model, "champion", version, f"gate passed for v{version}")
    assert _champion(client, model) == "3"

    move = rollback_alias(client, model, "champion", reason="v3 answers badly")
    assert (move.action, move.previous, move.version) == ("rollback", "3", "2")
    assert _champion(client, model) == "2"
    demoted = client.get_model_version(model, "3").tags
    assert demoted["champion_rollback_reason"] == "v3 answers badly" and "champion_rolled_back_at" in demoted
    assert "champion_promoted_at" in client.get_model_version(model, "1").tags

    assert rollback_alias(client, model, "champion").version == "1"
    assert _champion(client, model) == "1"
    with pytest.raises(LookupError, match="no earlier version"):
        rollback_alias(client, model, "champion")
    assert _champion(client, model) == "1"

    history = read_history(client, model, "champion")
    assert [(m.action, m.version) for m in history] == [
        ("promote", "1"), ("promote", "2"), ("promote", "3"), ("rollback", "2"), ("rollback", "1")
    ]
    raw = json.loads(client.get_registered_model(model).tags[history_tag("champion")])
    assert raw[0]["reason"] == "gate passed for v1"


def test_promotion_after_rollback_stacks_again(registry) -> None:  # type: ignore[no-untyped-def]
    client, _, model = registry
    promote_version(client, model, "champion", "1", "first")
    promote_version(client, model, "champion", "2", "second")
    rollback_alias(client, model, "champion")
    promote_version(client, model, "champion", "3", "third")
    assert champion_stack(read_history(client, model, "champion")) == ["1", "3"]
    assert rollback_alias(client, model, "champion").version == "1"


def test_refuses_when_alias_was_moved_outside_the_history(registry) -> None:  # type: ignore[no-untyped-def]
    client, _, model = registry
    promote_version(client, model, "champion", "1", "first")
    promote_version(client, model, "champion", "2", "second")
    client.set_registered_model_alias(model, "champion", "3")  # by hand, unrecorded
    with pytest.raises(LookupError, match="refusing to guess"):
        rollback_alias(client, model, "champion")
    assert _champion(client, model) == "3"


def test_history_is_trimmed_but_rollback_still_works(registry) -> None:  # type: ignore[no-untyped-def]
    client, _, model = registry
    for version in ("1", "2", "3", "1", "2", "3"):
        promote_version(client, model, "champion", version, "x", history_length=3)
    history = read_history(client, model, "champion")
    assert len(history) == 3
    assert rollback_target(history) == "2"
    assert rollback_alias(client, model, "champion", history_length=3).version == "2"


def test_cli_rollback_and_history(registry) -> None:  # type: ignore[no-untyped-def]
    client, uri, model = registry
    promote_version(client, model, "champion", "1", "first")
    promote_version(client, model, "champion", "2", "second")
    runner = CliRunner()
    result = runner.invoke(app, ["model", "rollback", "--model-name", model, "--tracking-uri", uri, "--reason", "bad v2"])
    assert result.exit_code == 0, result.output
    assert f"{model}@champion: version 2 -> 1 (bad v2)" in result.output
    assert _champion(client, model) == "1"
    listing = runner.invoke(app, ["model", "history", "--model-name", model, "--tracking-uri", uri])
    assert listing.exit_code == 0, listing.output
    assert "rollback  2 -> 1  bad v2" in listing.output
    assert "current: 1; rollback would restore: nothing" in listing.output
    again = runner.invoke(app, ["model", "rollback", "--model-name", model, "--tracking-uri", uri])
    assert again.exit_code == 1 and "no earlier version" in again.output


def test_stack_logic_on_plain_history() -> None:
    moves = [AliasMove(action="promote", version=v, previous=None, at="t") for v in ("4", "5")]
    assert champion_stack(moves) == ["4", "5"] and rollback_target(moves) == "4"
    # a history whose older part was trimmed away: a rollback to an unknown version still lands there
    trimmed = [AliasMove(action="rollback", version="2", previous="3", at="t")]
    assert champion_stack(trimmed) == ["2"] and rollback_target(trimmed) is None
