"""The ``drugslm`` command line (plain Python: no ZenML here; pipelines run with ``zenml``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

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


@app.command()
def serve(
    model_name: Annotated[str, typer.Option(help="registered model name")] = "drugslm",
    model_alias: Annotated[str, typer.Option(help="registry alias to serve")] = "champion",
    tracking_uri: Annotated[str | None, typer.Option(envvar="MLFLOW_TRACKING_URI", help="MLflow tracking URI")] = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    config: Annotated[Path, typer.Option(help="run config YAML (base model settings)")] = Path("configs/local.yaml"),
) -> None:
    """Serve ``model_name@model_alias`` as an OpenAI-style chat completions API."""
    import mlflow
    import uvicorn

    from drugslm_core.config import load_settings, load_settings_file
    from drugslm_core.serving.app import create_app, load_served_model

    if not tracking_uri:
        raise typer.BadParameter("set --tracking-uri or MLFLOW_TRACKING_URI (`make serve` does it)")
    mlflow.set_tracking_uri(tracking_uri)
    resolved = load_settings_file(config) if config.is_file() else load_settings()
    served = load_served_model(model_name, model_alias, resolved.base_model, resolved.data)
    typer.echo(f"Serving {served.model_id} (@{model_alias}) on http://{host}:{port}/v1/chat/completions")
    uvicorn.run(create_app(served), host=host, port=port, log_level=os.environ.get("LOG_LEVEL", "info"))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
