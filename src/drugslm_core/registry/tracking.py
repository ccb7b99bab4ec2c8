"""Log training and evaluation to the active MLflow run (registration: ``registry.mlflow_registry``).

Every function here talks to MLflow and expects an active run: inside a ZenML step the
MLflow experiment tracker opens it; elsewhere start one with ``mlflow.start_run``.
"""

from __future__ import annotations

import json
from typing import Any

from drugslm_core.evaluation.compare import EvaluationResult
from drugslm_core.evaluation.rag import rag_metrics
from drugslm_core.modeling.training import TrainingOutcome


def active_run_id() -> str:
    import mlflow

    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("no active MLflow run: run this inside a step with the experiment tracker enabled")
    return run.info.run_id


def log_training(outcome: TrainingOutcome) -> None:
    """Settings and the training summary on the active run. The per-step curves (``loss``,
    ``eval_loss``, ``learning_rate``, ``grad_norm``) are logged live by the Trainer's MLflow
    callback; they are written here only when training ran elsewhere (accelerate workers)."""
    import mlflow

    run_id = active_run_id()
    params = {f"training.{k}": v for k, v in outcome.settings.model_dump(mode="json").items()}
    params.update(
        {
            "base_model.name": outcome.base_model.name,
            "base_model.sha256": outcome.base_model.sha256,
            "train_examples": outcome.train_examples,
            "validation_examples": outcome.validation_examples,
            "trainable_parameters": outcome.trainable_parameters,
        }
    )
    mlflow.log_params({k: str(v) for k, v in params.items()})
    logged = mlflow.MlflowClient().get_metric_history(run_id, "loss")
    if not logged:
        for step, loss in outcome.loss_history:
            mlflow.log_metric("loss", loss, step=step)
        for step, loss in outcome.eval_history:
            mlflow.log_metric("eval_loss", loss, step=step)
    metrics = {
        "train_loss_mean": outcome.train_loss,
        "train_runtime_s": outcome.runtime_s,
        "train_tokens_seen": float(outcome.tokens_seen),
        "train_tokens_per_s": outcome.tokens_seen / max(outcome.runtime_s, 1e-9),
        "train_answer_tokens_per_s": outcome.answer_tokens / max(outcome.runtime_s, 1e-9),
        "resumed_from_step": float(outcome.resumed_from_step),
    }
    if outcome.best_eval_loss is not None and outcome.best_step is not None:
        metrics.update({"best_eval_loss": outcome.best_eval_loss, "best_step": float(outcome.best_step)})
    mlflow.log_metrics(metrics)


def evaluation_metrics(result: EvaluationResult) -> dict[str, float]:
    """Flat MLflow metrics: perplexities, benchmark means, safety counts and paired intervals."""
    metrics = {
        "base_eval_perplexity": result.base.perplexity,
        "tuned_eval_perplexity": result.tuned.perplexity,
        "eval_answer_tokens": float(result.tuned.answer_tokens),
        "eval_examples": float(result.tuned.examples),
        "relative_improvement": result.relative_improvement,
    }
    if result.champion is not None:
        metrics["champion_eval_perplexity"] = result.champion.perplexity
    for label, scores in result.models.items():
        metrics[f"{label}_benchmark_answers"] = float(len(scores.answers))
        metrics.update({f"{label}_{metric}": value for metric, value in scores.means.items()})
        metrics.update({f"{label}_{flag}_count": float(count) for flag, count in scores.safety_counts.items()})
        for item_set, means in scores.means_by_set.items():
            metrics.update({f"{label}.{item_set}.{metric}": value for metric, value in means.items()})
    for comparison in result.comparisons:
        where = f".{comparison.item_set}" if comparison.item_set and comparison.item_set != "benchmark" else ""
        prefix = f"{comparison.candidate}_vs_{comparison.other}{where}.{comparison.metric}"
        metrics[f"{prefix}.diff"] = comparison.interval.difference
        metrics[f"{prefix}.ci_low"] = comparison.interval.low
        metrics[f"{prefix}.ci_high"] = comparison.interval.high
    if result.rag is not None:
        metrics.update(rag_metrics(result.rag))
    return metrics


def _json_list(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, indent=2, default=str)


def log_evaluation(result: EvaluationResult, report_html: str | None = None) -> None:
    """Metrics, each model's benchmark answers (JSON) and the run report (``report.html``)."""
    import mlflow

    active_run_id()
    mlflow.log_metrics(evaluation_metrics(result))
    # These artifacts are JSON lists (readers load results_<label>.json as rows), which log_dict's
    # signature does not take: log the text log_dict would write (json.dump, indent=2, default=str).
    for label, scores in result.models.items():
        mlflow.log_text(
            _json_list([answer.model_dump() for answer in scores.answers]), f"benchmark/results_{label}.json"
        )
    mlflow.log_text(_json_list([row.model_dump() for row in result.categories]), "benchmark/categories.json")
    if result.rag is not None:
        mlflow.log_dict(result.rag.model_dump(mode="json"), "benchmark/rag.json")
    if report_html is not None:
        mlflow.log_text(report_html, "report.html")
