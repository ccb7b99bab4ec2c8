"""The training pipeline with reviewed feedback and the DPO stage (configs/preference.yaml's
shape), on a tiny budget: feedback goes through the same clean + GX gate into the data, DPO
tunes the SFT adapter (its frozen reference), and the tuned adapter goes through the same
evaluation and gate and is registered. A few minutes on 2 idle CPU cores (about 20 on a shared, busy machine)."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest

from tests.e2e.test_training_pipeline import TINY
from tests.isolated_project import BIN, isolated_project, run_command, run_training_pipeline

pytestmark = pytest.mark.e2e

DRUGS = ["Metformin", "Lisinopril", "Omeprazole", "Sertraline", "Warfarin", "Ibuprofen"]


def feedback_line(trace: str, drug: str, **fields: object) -> str:
    record = {
        "trace_id": trace, "request_id": f"req-{trace}", "created_at": "2026-11-20T10:00:00+00:00",
        "model_version": "drugslm-e2e-v1", "question": f"How should I take {drug.lower()}?",
        "answer": f"Take {drug.lower()} twice a day with plenty of grapefruit juice.",
        "citations": [{"chunk_id": f"{drug}-dosage", "drug": drug, "section": "dosage", "source": "sample-corpus"}],
        "rating": None, "correction": None, "reason": None, "reviewer_role": None,
    }
    record.update(fields)
    return json.dumps(record)


def export_lines() -> list[str]:
    lines = []
    for drug in DRUGS:  # several drugs: some of them land in the train split, whatever the seed
        lines.append(feedback_line(f"fix-{drug}", drug, rating="down", reason="wrong_dose", reviewer_role="pharmacist",
                                   correction=f"Take {drug.lower()} exactly as your doctor prescribed; ask your "
                                              "pharmacist before changing the dose."))
    lines.append(feedback_line("patient-fix", "Metformin", correction="Take it whenever you like, any dose.",
                               reviewer_role="patient"))
    lines.append(feedback_line("unrated", "Aspirin"))
    lines.append(feedback_line("thumbs-down", "Aspirin", rating="down", reason="unclear"))
    return lines


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("e2e-preference")
    export = base / "feedback-2026-11.jsonl"
    export.write_text("\n".join(export_lines()) + "\n", encoding="utf-8")
    settings = {
        **TINY, "training": {**TINY["training"], "max_steps": 4, "eval_steps": 4},
        "data": {"feedback": {"files": [str(export)]}},
        "preference": {"enabled": True, "method": "dpo", "max_steps": 2, "learning_rate": 0.0005,
                       "max_length": 256},
        "registry": {"model_name": "drugslm-e2e-preference"},
    }
    project, env = isolated_project(base, settings)
    tracking_uri = run_command([str(BIN / "python"), "-m", "drugslm_ops.stacks.local"], project, env).strip().splitlines()[-1]
    run_training_pipeline(project, env)
    summary = json.loads(run_command([str(BIN / "python"), "-m", "drugslm_ops.stacks.summary", "--json"], project, env).splitlines()[-1])
    summary["tracking_uri"], summary["export"] = tracking_uri, str(export)
    return summary


def test_feedback_is_accounted_through_the_gate(pipeline_run: dict) -> None:
    assert pipeline_run["status"] == "completed"
    assert {"finetune", "preference", "evaluate", "register"} <= set(pipeline_run["steps"])
    held = 320 + len(DRUGS) + 3
    assert pipeline_run["records_accepted"] + pipeline_run["records_quarantined"] == held
    tally = pipeline_run["records_per_file"][pipeline_run["export"]]
    # the corrections by a pharmacist are accepted; the patient's correction, the unrated and
    # the thumbs-down-only answers are quarantined
    assert tally == {"held": len(DRUGS) + 3, "accepted": len(DRUGS), "quarantined": 3}


def test_dpo_moved_the_adapter_and_went_through_the_gate(pipeline_run: dict) -> None:
    client = mlflow.MlflowClient(tracking_uri=pipeline_run["tracking_uri"])
    run = client.get_run(pipeline_run["mlflow_run_id"])
    assert run.data.params["preference.method"] == "dpo"
    metrics = run.data.metrics
    assert metrics["preference.steps"] == 2
    assert metrics["preference.examples"] >= 1
    assert metrics["preference.adapter_change_l2"] > 0  # the LoRA weights moved from the SFT adapter's
    assert metrics["preference.feedback_records_in"] == len(DRUGS) + 3
    # the same evaluation and gate decided on the DPO adapter
    assert run.data.tags["gate.primary_metric"] == "perplexity"
    assert run.data.tags["gate.promote"] in {"true", "false"}
    assert "tuned_eval_perplexity" in metrics
    version = client.get_model_version("drugslm-e2e-preference", pipeline_run["mlflow_version"])
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=version.source, tracking_uri=pipeline_run["tracking_uri"]))
    manifest = json.loads((local / "drugslm_adapter.json").read_text())
    assert manifest["preference"]["method"] == "dpo" and manifest["preference"]["steps"] == 2
    assert (local / "adapter_model.safetensors").is_file() and not (local / "ref").exists()
