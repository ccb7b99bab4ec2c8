"""Register (idempotently) and activate the embedded default ZenML stack.

``drugslm-local`` = local orchestrator + local artifact store + the MLflow
experiment tracker. With no tracking URI, ZenML's MLflow
tracker keeps MLflow's SQLite store and artifacts inside the local artifact
store, so nothing else has to run. ``python -m drugslm_ops.stacks.local`` prints the
MLflow tracking URI it ends up with.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

STACK = "drugslm-local"
TRACKER = "mlflow_tracker"


def ensure_local_stack(activate: bool = False) -> str:
    """Register the stack if missing; activate it when asked, or when ZenML's bare
    ``default`` stack is active (a fresh machine). A stack the user chose, such as
    ``drugslm-remote`` after ``make stack-up``, stays active. Returns the active
    stack's MLflow tracking URI."""
    from zenml.client import Client
    from zenml.enums import StackComponentType

    client = Client()

    def ensure(kind: StackComponentType, name: str) -> None:
        existing = client.list_stack_components(type=kind, name=name)
        if not existing.items:
            client.create_stack_component(name=name, flavor="mlflow", component_type=kind, configuration={})

    ensure(StackComponentType.EXPERIMENT_TRACKER, TRACKER)
    if not client.list_stacks(name=STACK).items:
        client.create_stack(
            name=STACK,
            components={
                StackComponentType.ORCHESTRATOR: "default",
                StackComponentType.ARTIFACT_STORE: "default",
                StackComponentType.EXPERIMENT_TRACKER: TRACKER,
            },
        )
    if client.active_stack_model.name != STACK and (activate or client.active_stack_model.name == "default"):
        client.activate_stack(STACK)
    return client.active_stack.experiment_tracker.get_tracking_uri()  # type: ignore[union-attr]


def main(
    activate: Annotated[bool, typer.Option(help="make drugslm-local the active stack even if another one is")] = False,
) -> None:
    """Register the embedded stack if needed; print its MLflow tracking URI (stdout, for $(...))."""
    uri = ensure_local_stack(activate=activate)
    from zenml.client import Client

    print(f"ZenML stack {Client().active_stack_model.name} active; MLflow tracking URI: {uri}", file=sys.stderr)
    print(uri)


if __name__ == "__main__":
    typer.run(main)
