"""``drugslm feedback export``: the served requests of a time window, with their feedback, as JSONL."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

import typer

feedback_app = typer.Typer(help="Traces of served requests and their feedback (MLflow Tracing).", no_args_is_help=True)


def _moment(text: str, option: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        typer.echo(f"drugslm feedback export: {option} {text!r} is not an ISO-8601 time "
                   "(e.g. 2026-11-23T00:00:00Z)", err=True)
        raise typer.Exit(2) from None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


@feedback_app.command("export")
def export(
    since: Annotated[str, typer.Option(help="start of the window, ISO-8601 (UTC when no offset), included")],
    until: Annotated[str, typer.Option(help="end of the window, ISO-8601 (UTC when no offset), excluded")],
    out: Annotated[Path, typer.Option(help="JSONL file to write (one FeedbackRecord a line)")],
    tracking_uri: Annotated[str | None, typer.Option(envvar="MLFLOW_TRACKING_URI", help="MLflow tracking URI")] = None,
    config: Annotated[Path, typer.Option(help="run config YAML (feedback.trace_experiment)")] = Path("configs/local.yaml"),
) -> None:
    """Every request served in [since, until) with its latest rating and correction (rating null: unrated)."""
    from drugslm_core.config import load_settings, load_settings_file
    from drugslm_core.feedback.export import export_feedback, write_jsonl

    if not tracking_uri:
        typer.echo("drugslm feedback export: set --tracking-uri or MLFLOW_TRACKING_URI (the server's trace store)", err=True)
        raise typer.Exit(2)
    settings = load_settings_file(config) if config.is_file() else load_settings()
    start, end = _moment(since, "--since"), _moment(until, "--until")
    from mlflow.exceptions import MlflowException

    try:
        records = export_feedback(start, end, settings.feedback.trace_experiment, tracking_uri)
    except ValueError as error:
        typer.echo(f"drugslm feedback export: {error}", err=True)
        raise typer.Exit(1) from None
    except MlflowException as error:
        typer.echo(f"drugslm feedback export: cannot read traces from {tracking_uri}: {error.message}", err=True)
        raise typer.Exit(1) from None
    count = write_jsonl(records, out)
    rated = sum(record.rating is not None for record in records)
    typer.echo(f"wrote {count} served requests ({rated} rated) of {start.isoformat()} .. {end.isoformat()} "
               f"from experiment {settings.feedback.trace_experiment!r} to {out}")
