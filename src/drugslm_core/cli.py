"""The ``drugslm`` command line (plain Python: no ZenML here; pipelines run with ``zenml``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, NoReturn

import typer

app = typer.Typer(help="drugslm: drug-information LM tools.", no_args_is_help=True)


@app.command()
def settings(config: Annotated[Path, typer.Option(help="run config YAML")] = Path("configs/local.yaml")) -> None:
    """Print the resolved settings tree (config file + DRUGSLM_* environment overrides)."""
    from drugslm_core.config import load_settings_file

    typer.echo(load_settings_file(config).model_dump_json(indent=2))


@app.command("provision-base-model")
def provision_base_model_command(
    config: Annotated[Path, typer.Option(help="run config YAML")] = Path("configs/local.yaml"),
) -> None:
    """Build the offline base-model cache entry now (the pipeline also does it on first run)."""
    from drugslm_core.config import load_settings_file
    from drugslm_core.modeling.base_model import provision_base_model

    typer.echo(json.dumps(provision_base_model(load_settings_file(config).base_model).model_dump(), indent=2))


# `drugslm serve` runs the server in the foreground; `drugslm serve start|stop|status` manage it
# as a background process (serving/process.py). A group whose callback is the foreground server.
serve_app = typer.Typer(help="Serve the registered model: foreground, or start|stop|status in the background.")
app.add_typer(serve_app, name="serve")


@serve_app.callback(invoke_without_command=True)
def serve(
    ctx: typer.Context,
    model_name: Annotated[str, typer.Option(help="registered model name")] = "drugslm",
    model_alias: Annotated[str, typer.Option(help="registry alias to serve and follow")] = "champion",
    version: Annotated[str | None, typer.Option(help="serve this fixed version (no alias following)")] = None,
    tracking_uri: Annotated[str | None, typer.Option(envvar="MLFLOW_TRACKING_URI", help="MLflow tracking URI")] = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    config: Annotated[Path, typer.Option(help="run config YAML (base model and serving settings)")] = Path("configs/local.yaml"),
) -> None:
    """Serve ``model_name@model_alias`` (or ``--version``) as an OpenAI-compatible API (docs/serving.md)."""
    if ctx.invoked_subcommand is not None:
        return  # `drugslm serve start|stop|status`
    import logging

    from drugslm_core.serving.auth import HOW_TO_SET_KEYS, ApiKeys, is_loopback

    def fail(message: str, code: int = 1) -> NoReturn:
        typer.echo(f"drugslm serve: {message}", err=True)
        raise typer.Exit(code)

    if not tracking_uri:
        fail("set --tracking-uri or MLFLOW_TRACKING_URI (`make serve` does it)", 2)
    try:
        keys = ApiKeys.from_env()
    except FileNotFoundError as error:
        fail(str(error), 2)
    if not keys.enabled and not is_loopback(host):
        fail(f"no API key configured, and {host} is not a loopback address: {HOW_TO_SET_KEYS}", 2)

    import mlflow
    import uvicorn

    from drugslm_core.config import load_settings, load_settings_file
    from drugslm_core.registry.loading import alias_version
    from drugslm_core.serving.app import ServerState, create_app, load_served_model

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    mlflow.set_tracking_uri(tracking_uri)
    resolved = load_settings_file(config) if config.is_file() else load_settings()
    serving = resolved.serving

    def load(number: str | None):  # type: ignore[no-untyped-def]
        return load_served_model(
            model_name, model_alias, resolved.base_model, resolved.data, version=number,
            compute_dtype=serving.compute_dtype, retrieval=resolved.retrieval,
        )

    wanted = f"{model_name} v{version}" if version else f"{model_name}@{model_alias}"
    try:
        served = load(version)
    except LookupError:
        fail(f"no model version {wanted} in the MLflow registry at {tracking_uri}: run `make run` "
             "(it trains, evaluates and promotes a champion), or pass --version N of a registered version")
    except RuntimeError as error:
        fail(f"cannot serve {wanted}: {error}")
    state = ServerState(served, serving, retrieval=resolved.retrieval)
    if version is None and serving.poll_interval_s > 0:
        state.follow_alias(lambda: alias_version(model_name, model_alias), load, serving.poll_interval_s)
    if not keys.enabled:
        logging.getLogger("drugslm.serving").warning(
            "no API key configured: serving WITHOUT authentication, on loopback only (%s)", HOW_TO_SET_KEYS
        )
    following = f"following @{model_alias} every {serving.poll_interval_s:g} s" if state.watcher else "fixed version"
    typer.echo(f"Serving {served.model_id} ({following}) on http://{host}:{port}/v1/chat/completions")
    traces = None
    if resolved.feedback.enabled:  # every answer an MLflow trace in this tracking store (docs/serving.md)
        from drugslm_core.feedback.traces import TraceRecorder

        traces = TraceRecorder(resolved.feedback.trace_experiment, resolved.cleaning.pii, resolved.feedback.max_pending,
                               on_failure=lambda reason: state.metrics.trace_failures.labels(reason).inc())
    del served  # the state holds it; after a swap the old weights must be freeable
    from drugslm_core.serving.fine_tuning import FineTuneJobs

    jobs = FineTuneJobs(resolved.fine_tuning) if resolved.fine_tuning.enabled else None
    app = create_app(state, keys, traces, resolved.feedback.feedback_wait_s, jobs=jobs)
    uvicorn.run(app, host=host, port=port, log_level=os.environ.get("LOG_LEVEL", "info"))


def _settings(config: Path):  # type: ignore[no-untyped-def]
    from drugslm_core.config import load_settings, load_settings_file

    return load_settings_file(config) if config.is_file() else load_settings()


def _deployment_settings(config: Path):  # type: ignore[no-untyped-def]
    return _settings(config).deployment


_CONFIG = Annotated[Path, typer.Option(help="run config YAML (base model and deployment settings)")]


@serve_app.command("start")
def serve_start(
    config: _CONFIG = Path("configs/local.yaml"),
    host: Annotated[str | None, typer.Option(help="default: deployment.host")] = None,
    port: Annotated[int | None, typer.Option(help="default: deployment.port")] = None,
    version: Annotated[str | None, typer.Option(help="a registered version instead of the champion alias")] = None,
    tracking_uri: Annotated[str | None, typer.Option(envvar="MLFLOW_TRACKING_URI", help="MLflow tracking URI")] = None,
    timeout: Annotated[float | None, typer.Option(help="readiness wait in seconds (default: deployment.ready_timeout_s)")] = None,
) -> None:
    """Start the server in the background (pid and log under deployment.state_dir) and wait until it is ready."""
    from drugslm_core.serving.process import ServerError, ServerProcess, api_key_from_env, server_command

    resolved = _settings(config)
    settings = resolved.deployment
    if not tracking_uri:
        raise typer.BadParameter('set --tracking-uri or MLFLOW_TRACKING_URI (e.g. "$(.venv/bin/python -m drugslm_ops.stacks.local)")')
    host, port = host or settings.host, port or settings.port
    command = server_command(config, host, port, version, resolved.registry.model_name, resolved.registry.champion_alias)
    url = f"http://{host}:{port}"
    try:
        state = ServerProcess(settings.state_dir).start(
            command, url, version=version, api_key=api_key_from_env(),
            ready_timeout_s=timeout or settings.ready_timeout_s, env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri},
        )
    except ServerError as error:
        typer.echo(f"drugslm serve start: {error}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"drugslm server started: pid={state.pid} url={state.url} model={state.model or '?'} "
               f"log={settings.state_dir / 'serve.log'}")


@serve_app.command("stop")
def serve_stop(config: _CONFIG = Path("configs/local.yaml")) -> None:
    """Stop the background server (SIGTERM, then SIGKILL after 20 s)."""
    from drugslm_core.serving.process import ServerProcess

    stopped = ServerProcess(_deployment_settings(config).state_dir).stop()
    typer.echo(f"drugslm server stopped (pid {stopped})" if stopped else "drugslm server: not running")


@serve_app.command("status")
def serve_status(config: _CONFIG = Path("configs/local.yaml")) -> None:
    """Print the background server's version, URL and pid (exit code 3 when it is not running)."""
    from drugslm_core.serving.process import ServerProcess

    status = ServerProcess(_deployment_settings(config).state_dir).status()
    typer.echo(status.describe())
    if not status.running:
        raise typer.Exit(3)


TOOLING_ENTRY_POINTS = "drugslm.commands"
"""Command groups of the repository tooling (``drugslm_ops``, ZenML-backed), declared in
pyproject.toml's ``[project.entry-points."drugslm.commands"]``. Found by name and imported only
when one runs: the core never imports the tooling (its import graph points one way)."""


def _tooling(name: str, help_text: str) -> None:
    """``drugslm <name> ...``: hand every argument to the tooling's typer app of that name."""

    @app.command(
        name,
        help=help_text,
        add_help_option=False,
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )
    def command(ctx: typer.Context) -> None:
        from importlib.metadata import entry_points

        found = list(entry_points(group=TOOLING_ENTRY_POINTS, name=name))
        if not found:
            typer.echo(f"drugslm {name}: the repository tooling (drugslm_ops) is not installed; "
                       "run `make setup` (pip install -e .) in the drugslm repository", err=True)
            raise typer.Exit(2)
        found[0].load()(args=ctx.args, prog_name=f"drugslm {name}")


_tooling("schedule", "Scheduled retraining and monitoring: render | create | list | delete (drugslm_ops.schedules).")
_tooling("kubeflow", "Kubeflow Pipelines option: compile (the KFP v2 spec of the training pipeline, offline; drugslm_ops.kubeflow).")
_tooling("stack", "The loopback production-shaped stack (PostgreSQL, moto S3, MLflow server, ZenML server): up | down | status | restart-s3.")


from drugslm_core.feedback.cli import feedback_app  # noqa: E402 - next to its add_typer

app.add_typer(feedback_app, name="feedback")

model_app = typer.Typer(help="Registered model versions: the champion alias, its history, rollback.", no_args_is_help=True)
app.add_typer(model_app, name="model")

_TRACKING = Annotated[str | None, typer.Option(envvar="MLFLOW_TRACKING_URI", help="MLflow tracking URI")]


def _set_tracking(tracking_uri: str | None) -> None:
    import mlflow

    if not tracking_uri:
        raise typer.BadParameter('set --tracking-uri or MLFLOW_TRACKING_URI (e.g. "$(.venv/bin/python -m drugslm_ops.stacks.local)")')
    mlflow.set_tracking_uri(tracking_uri)


@model_app.command("rollback")
def model_rollback(
    model_name: Annotated[str, typer.Option(help="registered model name")] = "drugslm",
    alias: Annotated[str, typer.Option(help="alias to move back")] = "champion",
    reason: Annotated[str, typer.Option(help="recorded in the alias history and on the demoted version")] = "manual rollback",
    tracking_uri: _TRACKING = None,
) -> None:
    """Move ``model_name@alias`` back to the version that held it before the current one."""
    from drugslm_core.registry.rollback import rollback_champion

    _set_tracking(tracking_uri)
    try:
        move = rollback_champion(model_name, alias, reason)
    except LookupError as error:
        typer.echo(f"drugslm model rollback: {error}", err=True)
        raise typer.Exit(1) from error
    typer.echo(f"{model_name}@{alias}: version {move.previous} -> {move.version} ({move.reason})")


@model_app.command("history")
def model_history(
    model_name: Annotated[str, typer.Option(help="registered model name")] = "drugslm",
    alias: Annotated[str, typer.Option(help="alias whose moves to list")] = "champion",
    gate: Annotated[bool, typer.Option(help="also print each version's promotion-gate decision, check by check")] = True,
    tracking_uri: _TRACKING = None,
) -> None:
    """List the recorded moves of ``model_name@alias``, oldest first, the current holder, and for
    each registered version the gate's decision with every check (metric or flag, both values,
    test, p-value or interval, pass/fail)."""
    import mlflow

    from drugslm_core.registry.aliases import current_version, read_history, rollback_target

    _set_tracking(tracking_uri)
    client = mlflow.MlflowClient()
    history = read_history(client, model_name, alias)
    for move in history:
        typer.echo(f"{move.at}  {move.action:8}  {move.previous or '-'} -> {move.version}  {move.reason}")
    typer.echo(
        f"current: {current_version(client, model_name, alias) or 'none'}; "
        f"rollback would restore: {rollback_target(history) or 'nothing'}"
    )
    if gate:
        from drugslm_core.registry.mlflow_registry import version_decisions

        for decision in version_decisions(client, model_name):
            typer.echo(f"\nversion {decision.version}: {decision.explanation}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
