"""Scheduled retraining of the training pipeline (ZenML cron ``Schedule``).

On the Kubernetes stack the schedule becomes a CronJob in the namespace
``drugslm`` that starts the orchestrator Job (docs/kubernetes.md §10). Run from
the repository root::

    drugslm schedule render            # the CronJob YAML, offline (no cluster, no stack)
    drugslm schedule create            # register it on the active stack (must support schedules)
    drugslm schedule list
    drugslm schedule delete drugslm-weekly-retrain
    drugslm schedule create --pipeline monitoring --schedule-config configs/schedule-monitoring.yaml

(or ``python -m drugslm_ops.schedules ...``). Defaults: configs/k8s-gpu.yaml (the run) and
configs/schedule.yaml (name, cron, CronJob policy).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import yaml

DEFAULT_RUN_CONFIG = Path("configs/k8s-gpu.yaml")
DEFAULT_SCHEDULE_CONFIG = Path("configs/schedule.yaml")
CONCURRENCY_POLICIES = ("Allow", "Forbid", "Replace")

app = typer.Typer(
    help="Scheduled retraining of the training pipeline (ZenML cron schedules).", no_args_is_help=True, add_completion=False
)

RunConfigOption = Annotated[Path, typer.Option("--config", help="run config of the scheduled runs")]
ScheduleConfigOption = Annotated[Path, typer.Option("--schedule-config", help="schedule + CronJob policy")]
CronOption = Annotated[str | None, typer.Option("--cron", help="cron expression; default: the schedule config's")]
PIPELINES = ("training", "monitoring")
PipelineOption = Annotated[
    str, typer.Option("--pipeline", help="training (weekly retraining) or monitoring (configs/schedule-monitoring.yaml)")
]


def _schedule_run_config(run_config: Path, schedule_config: Path, cron: str | None):
    """configs/k8s-gpu.yaml deep-merged with configs/schedule.yaml (+ --cron), checked."""
    from drugslm_ops.k8s_manifests import merge_run_configs

    for path in (run_config, schedule_config):
        if not path.is_file():
            raise typer.BadParameter(f"{path} not found (run from the repository root)")
    merged = merge_run_configs(run_config, schedule_config)
    if cron:
        from zenml.config.schedule import Schedule

        schedule = merged.schedule.model_copy(update={"cron_expression": cron}) if merged.schedule else None
        merged = merged.model_copy(update={"schedule": schedule or Schedule(cron_expression=cron)})
    if merged.schedule is None or not merged.schedule.cron_expression:
        raise typer.BadParameter(f"{schedule_config} needs schedule.cron_expression (or pass --cron)")
    _check_cron(merged.schedule.cron_expression)
    orchestrator = merged.settings.get("orchestrator")
    policy = orchestrator.model_dump().get("concurrency_policy") if orchestrator else None
    if policy not in CONCURRENCY_POLICIES:
        raise typer.BadParameter(
            f"settings.orchestrator.concurrency_policy must be one of {', '.join(CONCURRENCY_POLICIES)}, got {policy!r}"
        )
    return merged


def _check_cron(expression: str) -> None:
    """Five fields, as a Kubernetes CronJob accepts (ZenML does not check it)."""
    fields = expression.split()
    if len(fields) != 5 and not (len(fields) == 1 and fields[0].startswith("@")):
        raise typer.BadParameter(f"cron expression {expression!r} must have 5 fields (minute hour day month weekday)")


@app.command()
def render(
    config: RunConfigOption = DEFAULT_RUN_CONFIG,
    schedule_config: ScheduleConfigOption = DEFAULT_SCHEDULE_CONFIG,
    cron: CronOption = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write here instead of stdout")] = None,
) -> None:
    """Write the CronJob the Kubernetes orchestrator would create, offline, for review/validation."""
    from drugslm_ops.k8s_manifests import PLACEHOLDER_SNAPSHOT_ID, build_schedule_cron_job, to_manifest

    merged = _schedule_run_config(config, schedule_config, cron)
    manifest = to_manifest(build_schedule_cron_job(merged, merged.schedule.cron_expression))
    header = (
        f"# CronJob for schedule {merged.schedule.name!r}, rendered offline by `drugslm schedule render`\n"
        f"# from {config} + {schedule_config} with ZenML's manifest_utils (as the Kubernetes orchestrator builds it).\n"
        f"# On `drugslm schedule create` ZenML fills in the snapshot id ({PLACEHOLDER_SNAPSHOT_ID} here),\n"
        "# the ZenML environment variables and a random job-name prefix; apply it only through ZenML.\n"
    )
    text = header + yaml.safe_dump(manifest, sort_keys=False)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)
        typer.echo(f"wrote {output}")


def _require_schedulable_stack():
    from zenml.client import Client

    stack = Client().active_stack
    if not stack.orchestrator.config.is_schedulable:
        raise typer.BadParameter(
            f"the active stack {stack.name!r} uses the {stack.orchestrator.flavor!r} orchestrator, which does not "
            "support schedules (ZenML's local orchestrator never does). Activate the Kubernetes stack "
            "(`zenml stack set drugslm-k8s`, docs/kubernetes.md §8), or review the CronJob offline with "
            "`drugslm schedule render`."
        )
    return stack


@app.command()
def create(
    config: RunConfigOption = DEFAULT_RUN_CONFIG,
    schedule_config: ScheduleConfigOption = DEFAULT_SCHEDULE_CONFIG,
    cron: CronOption = None,
    pipeline: PipelineOption = "training",
) -> None:
    """Register the schedule on the active stack (the Kubernetes orchestrator creates the CronJob)."""
    if pipeline not in PIPELINES:
        raise typer.BadParameter(f"--pipeline must be one of {', '.join(PIPELINES)}, got {pipeline!r}")
    merged = _schedule_run_config(config, schedule_config, cron)
    stack = _require_schedulable_stack()
    from drugslm_ops import repository_pipeline

    scheduled = repository_pipeline(
        "pipelines.monitoring.monitoring_pipeline" if pipeline == "monitoring" else "pipelines.training.training_pipeline"
    )

    orchestrator_settings = merged.settings["orchestrator"].model_dump()
    scheduled.with_options(
        config_path=str(config), schedule=merged.schedule, settings={"orchestrator": orchestrator_settings}
    )()
    typer.echo(
        f"schedule {merged.schedule.name!r} ({merged.schedule.cron_expression}) created on stack {stack.name!r}; "
        "see `drugslm schedule list`"
    )


@app.command("list")
def list_schedules() -> None:
    """The schedules of the active project (name, cron, active, CronJob)."""
    from zenml.client import Client
    from zenml.integrations.kubernetes.constants import KUBERNETES_CRON_JOB_METADATA_KEY

    schedules = Client().list_schedules(size=100, is_archived=False).items
    if not schedules:
        typer.echo("no schedules")
        return
    for schedule in schedules:
        cron_job = schedule.run_metadata.get(KUBERNETES_CRON_JOB_METADATA_KEY, "-") if schedule.run_metadata else "-"
        typer.echo(
            f"{schedule.name}\tcron={schedule.cron_expression or '-'}\tactive={schedule.active}\tcronjob={cron_job}"
        )


@app.command()
def delete(name: Annotated[str, typer.Argument(help="schedule name (see `drugslm schedule list`)")]) -> None:
    """Delete the schedule; on Kubernetes this also deletes its CronJob."""
    from zenml.client import Client

    try:
        Client().delete_schedule(name)
    except KeyError as error:
        raise typer.BadParameter(f"no schedule named {name!r}: {error}") from error
    typer.echo(f"deleted schedule {name!r}")


if __name__ == "__main__":
    app()
