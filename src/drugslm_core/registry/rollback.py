"""Roll the champion alias back to the previous version (the one command for a bad promotion)."""

from __future__ import annotations

from drugslm_core.registry.aliases import AliasMove, rollback_alias


def rollback_champion(model_name: str, alias: str = "champion", reason: str = "manual rollback", history_length: int = 30) -> AliasMove:
    """Move ``model_name@alias`` back one step in its recorded history (tracking URI already set)."""
    import mlflow

    return rollback_alias(mlflow.MlflowClient(), model_name, alias, reason, history_length)
