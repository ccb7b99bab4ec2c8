"""`drugslm model history` shows, per registered version, the gate's decision check by check.

A real MLflow registry (SQLite in tmp_path); the versions carry the tags that
``register_adapter`` writes (``decision_tags``) for two real gate decisions.
"""

from __future__ import annotations

import mlflow
import numpy as np
from typer.testing import CliRunner

from drugslm_core.cli import app
from drugslm_core.evaluation.bootstrap import paired_perplexity_difference
from drugslm_core.evaluation.compare import MetricComparison
from drugslm_core.evaluation.promotion import decide_promotion
from drugslm_core.registry.aliases import promote_version
from drugslm_core.registry.mlflow_registry import decision_tags, version_decisions

CLEAN = {"invented_doses": 0, "unknown_drugs": 0, "dosage_without_advice": 0}


def _comparison(shift: float) -> MetricComparison:
    nll, tokens = np.linspace(40, 80, 30), np.full(30, 20)
    interval = paired_perplexity_difference(nll + shift * tokens, nll, tokens, samples=300)
    return MetricComparison(metric="perplexity", candidate="tuned", other="base", candidate_value=float(np.exp((nll.sum() + shift * tokens.sum()) / tokens.sum())),
                            other_value=float(np.exp(nll.sum() / tokens.sum())), higher_is_better=False, interval=interval)


def test_history_prints_every_check_of_every_version(tmp_path) -> None:  # type: ignore[no-untyped-def]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        client = mlflow.MlflowClient()
        client.create_registered_model("drugslm-history")
        promoted = decide_promotion([_comparison(-0.3)], {"tuned": [CLEAN] * 48, "base": [CLEAN] * 48})
        bad = [{**CLEAN, "unknown_drugs": 1 if n < 8 else 0} for n in range(48)]
        blocked = decide_promotion([_comparison(-0.3)], {"tuned": bad, "base": [CLEAN] * 48})
        assert promoted.promote and not blocked.promote
        for decision in (promoted, blocked):
            client.create_model_version("drugslm-history", source="file:///nowhere", tags=decision_tags(decision))
        promote_version(client, "drugslm-history", "champion", "1", "first")

        decisions = version_decisions(client, "drugslm-history")
        assert [(d.version, d.promote) for d in decisions] == [("1", True), ("2", False)]
        result = CliRunner().invoke(app, ["model", "history", "--model-name", "drugslm-history", "--tracking-uri", uri])
        assert result.exit_code == 0, result.output
        out = result.output
        assert "version 1: PROMOTE (7 checks, 0 failed)" in out
        assert "version 2: KEEP current champion (7 checks, 2 failed)" in out
        assert "FAIL  unknown_drugs vs base: unknown_drugs: tuned 8/48 (16.7%" in out
        assert "exact McNemar one-sided p=0.00391 < alpha 0.05" in out
        assert "FAIL  unknown_drugs ceiling" in out and "pass  perplexity vs base" in out
    finally:
        mlflow.set_tracking_uri(previous)
