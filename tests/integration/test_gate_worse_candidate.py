"""The gate on real models: it never promotes a candidate that is worse than, or no better than, base.

Real 4-bit SmolLM2, real adapters, real metrics, on a tiny slice (6 held-out
examples, 2 benchmark questions, 8 new tokens) so that it runs in about a minute:

- the *worse* candidate is a LoRA with random (non-zero) B matrices: it perturbs
  every linear layer, which raises perplexity far above the base model's;
- the *no better* one is a freshly initialised LoRA (B = 0), i.e. the base model
  itself, with an adapter that training never touched (zero steps).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from drugslm_core.config import BaseModelSettings, EvaluationSettings
from drugslm_core.evaluation.benchmark import load_benchmark
from drugslm_core.evaluation.compare import EvaluationResult, compare_models, evaluate_adapter
from drugslm_core.evaluation.promotion import decide_for_evaluation, decide_promotion, paired_safety_flags
from drugslm_core.modeling.base_model import provision_base_model
from drugslm_core.registry.loading import RegisteredAdapter
from tests.lora_adapters import sample_eval_split, save_lora_adapter

SETTINGS = EvaluationSettings(max_eval_examples=6, generation_samples=2, heldout_questions=2, max_new_tokens=8,
                              bootstrap_samples=500)


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory: pytest.TempPathFactory) -> EvaluationResult:
    import torch

    root = tmp_path_factory.mktemp("gate")
    base = provision_base_model(BaseModelSettings())
    eval_split = sample_eval_split(base)
    torch.manual_seed(0)
    save_lora_adapter(base, root / "untrained")
    save_lora_adapter(base, root / "perturbed", random_init=True)
    champion = RegisteredAdapter(version="7", run_id=None, adapter_dir=str(root / "untrained"))
    return evaluate_adapter(root / "perturbed", base, eval_split, load_benchmark(), SETTINGS, 256, "bfloat16", champion)


def test_worse_candidate_is_not_promoted(evaluation: EvaluationResult) -> None:
    assert evaluation.tuned.perplexity > evaluation.base.perplexity  # it really is worse
    decision = decide_for_evaluation(evaluation)
    assert decision.promote is False
    failed = {check.name for check in decision.checks if not check.passed}
    assert {"perplexity vs base", "perplexity vs champion"} <= failed
    assert decision.summary.startswith("keep current champion")


def test_worse_candidate_is_not_promoted_on_any_quality_metric_either(evaluation: EvaluationResult) -> None:
    for metric in ("rouge_l", "semantic_similarity", "key_fact_recall"):
        assert decide_for_evaluation(evaluation, primary_metric=metric).promote is False, metric


def test_untrained_lora_equals_base_and_is_not_promoted(evaluation: EvaluationResult) -> None:
    untrained, base = evaluation.models["champion"], evaluation.models["base"]
    assert untrained.perplexity.perplexity == pytest.approx(base.perplexity.perplexity, rel=1e-6)
    assert [a.response for a in untrained.answers] == [a.response for a in base.answers]
    only = {"champion": untrained, "base": base}
    comparisons = compare_models(only, SETTINGS, candidate="champion")
    flags = paired_safety_flags(evaluation.model_copy(update={"models": {"tuned": untrained, "base": base}}))
    decision = decide_promotion(comparisons, {"champion": flags["tuned"], "base": flags["base"]}, candidate="champion")
    assert decision.promote is False
    assert "not > 0" in next(c.detail for c in decision.checks if c.name == "perplexity vs base")


def test_results_are_in_the_benchmark_result_format(evaluation: EvaluationResult) -> None:
    for scores in evaluation.models.values():
        assert [a.item_set for a in scores.answers] == ["benchmark", "benchmark", "heldout", "heldout"]
        for answer in scores.answers:
            row = answer.model_dump()
            assert {"id", "category", "difficulty", "question", "response", "time_seconds", "timestamp"} <= set(row)
            # held-out questions have no key facts: no key-fact recall for them
            assert set(answer.scores) == {
                "rouge_l", "semantic_similarity", "invented_doses", "unknown_drugs", "dosage_without_advice",
            } | ({"key_fact_recall"} if answer.item_set == "benchmark" else set())
            assert answer.held_out is not None
    assert {row.category for row in evaluation.categories} == {
        a.category for a in evaluation.models["tuned"].answers if a.item_set == "benchmark"
    }
    assert Path(evaluation.models["tuned"].answers[0].timestamp[:4]).name.isdigit()
