"""The champion alias with a history, so that a promotion can be undone.

Each move of an alias is appended to the registered model's tag
``alias_history.<alias>`` (a JSON list, newest last, the last
``history_length`` kept). Promotions push a version, rollbacks pop one: the
version to roll back to is the one below the top of that stack. The versions
concerned get tags too (``<alias>_promoted_at``, ``<alias>_rolled_back_at`` and
the reason), so the MLflow UI shows what happened to each.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel


class AliasMove(BaseModel):
    action: Literal["promote", "rollback"]
    version: str
    """The version holding the alias after this move."""
    previous: str | None
    """The version that held it before (``None``: nobody)."""
    at: str
    reason: str = ""


def history_tag(alias: str) -> str:
    return f"alias_history.{alias}"


def champion_stack(history: list[AliasMove]) -> list[str]:
    """Versions that held the alias and were not rolled back, oldest first (the top holds it).

    A promotion pushes its version; a rollback pops the top. A history that starts
    mid-way (older moves trimmed) is tolerated: a rollback whose top is unknown
    leaves the stack at its own version.
    """
    stack: list[str] = []
    for move in history:
        if move.action == "promote":
            stack.append(move.version)
        else:
            if stack:
                stack.pop()
            if not stack or stack[-1] != move.version:
                stack.append(move.version)
    return stack


def rollback_target(history: list[AliasMove]) -> str | None:
    """The version a rollback would restore: the one below the current champion."""
    stack = champion_stack(history)
    return stack[-2] if len(stack) >= 2 else None


def read_history(client: Any, model_name: str, alias: str) -> list[AliasMove]:
    tags = client.get_registered_model(model_name).tags or {}
    raw = tags.get(history_tag(alias))
    return [AliasMove(**entry) for entry in json.loads(raw)] if raw else []


def _write_history(client: Any, model_name: str, alias: str, history: list[AliasMove], keep: int) -> None:
    payload = json.dumps([move.model_dump() for move in history[-keep:]], separators=(",", ":"))
    client.set_registered_model_tag(model_name, history_tag(alias), payload)


def current_version(client: Any, model_name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(model_name, alias).version)
    except MlflowException:
        return None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def promote_version(
    client: Any, model_name: str, alias: str, version: str, reason: str, history_length: int = 30
) -> AliasMove:
    """Point ``alias`` at ``version`` and record the move."""
    move = AliasMove(
        action="promote", version=str(version), previous=current_version(client, model_name, alias),
        at=_now(), reason=reason,
    )
    client.set_registered_model_alias(model_name, alias, str(version))
    client.set_model_version_tag(model_name, str(version), f"{alias}_promoted_at", move.at)
    _write_history(client, model_name, alias, [*read_history(client, model_name, alias), move], history_length)
    return move


def rollback_alias(
    client: Any, model_name: str, alias: str, reason: str = "manual rollback", history_length: int = 30
) -> AliasMove:
    """Move ``alias`` back to the version that held it before the current one.

    Raises ``LookupError`` when the history names no earlier version, or when the
    alias no longer points where the history says (someone moved it by hand).
    """
    history = read_history(client, model_name, alias)
    stack = champion_stack(history)
    current = current_version(client, model_name, alias)
    if not stack or current != stack[-1]:
        raise LookupError(
            f"{model_name}@{alias} is at version {current}, but its recorded history ends at "
            f"{stack[-1] if stack else 'nothing'}: refusing to guess what to roll back to"
        )
    target = rollback_target(history)
    if target is None:
        raise LookupError(f"{model_name}@{alias}: no earlier version in the alias history to roll back to")
    move = AliasMove(action="rollback", version=target, previous=current, at=_now(), reason=reason)
    client.set_registered_model_alias(model_name, alias, target)
    client.set_model_version_tag(model_name, current, f"{alias}_rolled_back_at", move.at)
    client.set_model_version_tag(model_name, current, f"{alias}_rollback_reason", reason)
    _write_history(client, model_name, alias, [*history, move], history_length)
    return move
