"""The monitoring CronJob: the same render path as the weekly retraining, its own schedule config."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed")
pytest.importorskip("zenml.integrations.kubernetes.manifest_utils", reason="zenml[kubernetes] is not installed")

from typer.testing import CliRunner  # noqa: E402

from drugslm_ops import schedules  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
RUN_CONFIG = REPO_ROOT / "configs" / "k8s-gpu.yaml"
MONITORING_SCHEDULE = REPO_ROOT / "configs" / "schedule-monitoring.yaml"


def test_monitoring_cron_job_renders_valid_with_forbid(tmp_path: Path) -> None:
    out = tmp_path / "cronjob.yaml"
    result = CliRunner().invoke(
        schedules.app, ["render", "--config", str(RUN_CONFIG), "--schedule-config", str(MONITORING_SCHEDULE), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert text.startswith("# CronJob for schedule 'drugslm-daily-monitoring'")
    (cron,) = [doc for doc in yaml.safe_load_all(text) if doc]
    assert cron["kind"] == "CronJob" and cron["spec"]["schedule"] == "0 2 * * *"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert cron["spec"]["startingDeadlineSeconds"] == 3600
    for version in ("1.30.0", "1.33.0"):
        kubernetes_validate.validate(cron, version, strict=True)


def test_create_rejects_an_unknown_pipeline() -> None:
    result = CliRunner().invoke(schedules.app, ["create", "--pipeline", "evaluation", "--config", str(RUN_CONFIG)])
    assert result.exit_code != 0
    assert "--pipeline must be one of training, monitoring" in result.output
