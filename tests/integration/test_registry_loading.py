"""Register an adapter with the real registration code, then rebuild it offline and re-measure.

MLflow is a SQLite store in tmp_path; the adapter is a LoRA with random B
matrices (so that it differs from the base model and the check means something);
the base model comes from the offline cache. Loading version 1 must reproduce
the eval perplexity recorded on it at registration.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from drugslm_core.config import BaseModelSettings, EvaluationSettings, TrainingSettings
from drugslm_core.evaluation.benchmark import load_benchmark
from drugslm_core.evaluation.compare import evaluate_adapter
from drugslm_core.evaluation.perplexity import answer_perplexity
from drugslm_core.evaluation.promotion import decide_for_evaluation
from drugslm_core.modeling.base_model import BaseModelRef, provision_base_model
from drugslm_core.modeling.training import TrainingOutcome
from drugslm_core.registry.loading import download_version, load_registered_version
from drugslm_core.registry.mlflow_registry import RegistrationResult, register_adapter
from tests.lora_adapters import sample_eval_split, save_lora_adapter

MODEL = "drugslm-registry-test"
SETTINGS = EvaluationSettings(max_eval_examples=4, generation_samples=0, heldout_questions=0, bootstrap_samples=200)


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    import torch

    root = tmp_path_factory.mktemp("registry")
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    mlflow.set_experiment("registry-test")
    base = provision_base_model(BaseModelSettings())
    eval_split = sample_eval_split(base)
    eval_split = eval_split.model_copy(update={"examples": eval_split.examples[:4]})
    torch.manual_seed(1)
    save_lora_adapter(base, root / "adapter", random_init=True, lora_alpha=4)
    evaluation = evaluate_adapter(root / "adapter", base, eval_split, load_benchmark(), SETTINGS, 256)
    outcome = TrainingOutcome(
        adapter_dir=str(root / "adapter"), base_model=base, steps=0, train_loss=0.0, loss_history=[], runtime_s=0.0,
        answer_tokens=0, trainable_parameters=0, total_parameters=0, train_examples=0, settings=TrainingSettings(),
    )
    decision = decide_for_evaluation(evaluation)
    with mlflow.start_run():
        registration = register_adapter(
            outcome, evaluation, decision, MODEL, "champion",
            {"domain_tag": eval_split.domain_tag, "system_prompt": eval_split.system_prompt},
        )
    yield registration, eval_split, root
    mlflow.set_tracking_uri(previous)


def test_version_is_adapter_only_and_names_its_base(registered) -> None:  # type: ignore[no-untyped-def]
    registration, _, root = registered
    assert isinstance(registration, RegistrationResult) and registration.version == "1"
    adapter = download_version(MODEL, version="1", download_dir=root / "dl-files")
    files = {path.name for path in Path(adapter.adapter_dir).iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors"} <= files
    assert not any(name.startswith("model") and name.endswith(".safetensors") for name in files)
    assert adapter.tags["base_model_name"] == "SmolLM2-135M-Instruct"
    assert len(adapter.tags["base_model_sha256"]) == 64
    assert adapter.tags["gate.promote"] in {"true", "false"} and adapter.tags["promotion_decision"]


def test_loading_a_registered_version_offline_reproduces_its_eval_perplexity(
    registered, monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    registration, eval_split, root = registered
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = load_registered_version(MODEL, BaseModelSettings(), version=registration.version,
                                     download_dir=root / "dl-load")
    recorded = float(loaded.adapter.tags["tuned_eval_perplexity"])
    again = answer_perplexity(loaded.model, loaded.tokenizer, eval_split, 256)
    assert again.perplexity == pytest.approx(recorded, rel=1e-3)
    assert again.perplexity > float(loaded.adapter.tags["base_eval_perplexity"])  # the random adapter is not the base


def test_a_foreign_base_model_is_refused(registered, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from drugslm_core.registry.loading import check_base_matches

    adapter = download_version(MODEL, version="1", download_dir=tmp_path)
    other = BaseModelRef(name="other", path="/nowhere", sha256="f" * 64, source="x")
    with pytest.raises(RuntimeError, match="trained on base model"):
        check_base_matches(adapter, other, MODEL)

