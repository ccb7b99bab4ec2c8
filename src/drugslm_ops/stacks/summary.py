"""Print what the last training run produced and where to look (end of `make run`)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from zenml.client import Client


def last_run_summary(pipeline_name: str = "training_pipeline") -> dict:
    from drugslm_ops import zenml_compat

    zenml_compat.install()  # artifacts are loaded here, outside a pipeline: resolve them as the steps do
    run = Client().get_pipeline(pipeline_name).last_run
    summary: dict = {
        "zenml_run": run.name,
        "zenml_run_id": str(run.id),
        "status": str(run.status.value),
        "steps": sorted(run.steps),
    }
    if run.status.value != "completed":
        return summary
    evaluation = run.steps["evaluate"].outputs["evaluation"][0].load()
    decision = run.steps["evaluate"].outputs["promotion_decision"][0].load()
    registration = run.steps["register"].outputs["registration"][0].load()
    accepted = run.steps["validate"].outputs["accepted_records"][0].load()
    quarantine = run.steps["validate"].outputs["quarantine"][0].load()
    summary.update(
        records_accepted=len(accepted),
        records_quarantined=len(quarantine),
        records_per_file={t.source: {"held": t.held, "accepted": t.accepted, "quarantined": t.quarantined}
                          for t in getattr(quarantine, "per_file", [])},
        base_eval_perplexity=round(evaluation.base.perplexity, 3),
        tuned_eval_perplexity=round(evaluation.tuned.perplexity, 3),
        champion_eval_perplexity=round(evaluation.champion.perplexity, 3) if evaluation.champion else None,
        benchmark=evaluation.benchmark,
        heldout_questions=evaluation.heldout,
        **{
            f"tuned_vs_{c.other}_{c.metric}" + (f"[{c.item_set}]" if c.item_set else ""):
                f"{c.interval.difference:+.3f} [{c.interval.low:+.3f}, {c.interval.high:+.3f}]"
            for c in evaluation.comparisons if c.metric in ("perplexity", "rouge_l", "semantic_similarity", "key_fact_recall")
        },
        **{f"{label}_safety_flags": {flag: f"{count}/{len(scores.answers)}" for flag, count in scores.safety_counts.items()}
           for label, scores in evaluation.models.items()},
        mlflow_model=registration.model_name,
        mlflow_version=registration.version,
        mlflow_run_id=registration.run_id,
        champion_version=registration.champion_version,
        decision=registration.decision,
        gate_checks=decision.explain(),
        mlflow_tracking_uri=registration.tracking_uri,
    )
    return summary


def main(json_output: Annotated[bool, typer.Option("--json", help="one JSON line instead of the table")] = False) -> None:
    """What the last training run produced, and where to look."""
    summary = last_run_summary()
    if json_output:
        print(json.dumps(summary))
        return
    print("\n=== drugslm training run ===")
    for key, value in summary.items():
        if key not in ("steps", "gate_checks"):
            print(f"  {key:34} {value}")
    if "gate_checks" in summary:
        print("\nPromotion gate: " + summary["gate_checks"])
    print(
        "\nWhere to look:\n"
        "  ZenML dashboard : make dashboard   (starts the local ZenML server, prints its URL;"
        " open the run, its DAG and the artifacts' HTML/PNG visualizations)\n"
        "  MLflow UI       : make mlflow-ui   (http://127.0.0.1:5000: experiment 'training_pipeline',"
        " registered model 'drugslm', alias @champion)\n"
    )


if __name__ == "__main__":
    typer.run(main)
