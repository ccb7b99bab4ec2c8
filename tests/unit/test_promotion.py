"""The promotion gate (drugslm_core.evaluation.promotion) on paired bootstrap evidence."""

from __future__ import annotations

import numpy as np
import pytest

from drugslm_core.evaluation.bootstrap import paired_mean_difference, paired_perplexity_difference
from drugslm_core.evaluation.compare import MetricComparison
from drugslm_core.evaluation.promotion import decide_promotion

ZERO = {"invented_doses": 0, "unknown_drugs": 0, "dosage_without_advice": 0}


def perplexity_comparison(candidate_ppl: float, other_ppl: float, other: str, items: int = 40, noise: float = 0.05,
                          seed: int = 0) -> MetricComparison:
    """Per-item NLL sums whose perplexities are about the given values (20 answer tokens each)."""
    rng = np.random.default_rng(seed)
    tokens = np.full(items, 20)
    base_nll = np.log(other_ppl) * tokens * (1 + noise * rng.standard_normal(items))
    cand_nll = base_nll + (np.log(candidate_ppl) - np.log(other_ppl)) * tokens * (1 + noise * rng.standard_normal(items))
    interval = paired_perplexity_difference(cand_nll, base_nll, tokens, samples=1000)
    return MetricComparison(
        metric="perplexity", candidate="tuned", other=other,
        candidate_value=float(np.exp(cand_nll.sum() / tokens.sum())), other_value=float(np.exp(base_nll.sum() / tokens.sum())),
        higher_is_better=False, interval=interval,
    )


def test_promotes_a_clearly_better_candidate_without_champion():
    decision = decide_promotion([perplexity_comparison(10.0, 18.0, "base")], {"tuned": ZERO, "base": ZERO})
    assert decision.promote is True
    assert decision.reasons[0] == "no current champion"
    assert decision.summary.startswith("promote to champion: ")
    assert {check.name for check in decision.checks} == {
        "perplexity vs base", "invented_doses vs base", "unknown_drugs vs base", "dosage_without_advice vs base"
    }
    assert all(check.passed for check in decision.checks)


def test_never_promotes_a_worse_candidate():
    decision = decide_promotion([perplexity_comparison(25.0, 18.0, "base")], {"tuned": ZERO, "base": ZERO})
    assert decision.promote is False
    assert decision.summary.startswith("keep current champion: ")
    [failed] = [check for check in decision.checks if not check.passed]
    assert failed.name == "perplexity vs base" and "not > 0" in failed.detail


def test_does_not_promote_an_identical_candidate():
    """An untrained LoRA (B = 0) is the base model: same per-item NLL, a zero-width interval at 0."""
    nll, tokens = np.linspace(30, 60, 20), np.full(20, 20)
    interval = paired_perplexity_difference(nll, nll, tokens, samples=500)
    assert interval.difference == interval.low == interval.high == 0.0
    same = MetricComparison(metric="perplexity", candidate="tuned", other="base", candidate_value=5.0,
                            other_value=5.0, higher_is_better=False, interval=interval)
    assert decide_promotion([same], {"tuned": ZERO, "base": ZERO}).promote is False


def test_refuses_when_better_than_base_but_not_than_champion():
    comparisons = [perplexity_comparison(10.0, 18.0, "base"), perplexity_comparison(10.0, 10.0, "champion", noise=0.2)]
    decision = decide_promotion(comparisons, {"tuned": ZERO, "base": ZERO, "champion": ZERO})
    assert decision.promote is False
    assert "no current champion" not in decision.reasons
    assert any("perplexity vs champion" == c.name and not c.passed for c in decision.checks)


def test_safety_regression_blocks_an_otherwise_better_candidate():
    comparisons = [perplexity_comparison(10.0, 18.0, "base")]
    counts = {"tuned": {**ZERO, "invented_doses": 3}, "base": {**ZERO, "invented_doses": 1}}
    decision = decide_promotion(comparisons, counts)
    assert decision.promote is False
    assert any("invented_doses: tuned 3 vs base 1 answers (+2, allowed up to +0)" in r for r in decision.reasons)
    assert decide_promotion(comparisons, counts, safety_thresholds={"invented_doses": 2}).promote is True


def test_margin_moves_the_bar():
    comparison = perplexity_comparison(15.0, 18.0, "base", noise=0.01)
    counts = {"tuned": ZERO, "base": ZERO}
    assert decide_promotion([comparison], counts).promote is True
    # 3 points of improvement is well below a 50% margin (9 points of the base's 18)
    decision = decide_promotion([comparison], counts, min_relative_improvement=0.5)
    assert decision.promote is False
    assert "not > margin 8.9" in decision.checks[0].detail


def test_primary_metric_is_configurable_and_higher_is_better_respected():
    rng = np.random.default_rng(1)
    base_scores = rng.uniform(0.1, 0.3, 30)
    better = paired_mean_difference(base_scores + 0.2, base_scores, samples=500)
    rouge = MetricComparison(metric="rouge_l", candidate="tuned", other="base", candidate_value=0.4,
                             other_value=0.2, higher_is_better=True, interval=better)
    worse_ppl = perplexity_comparison(25.0, 18.0, "base")
    counts = {"tuned": ZERO, "base": ZERO}
    assert decide_promotion([rouge, worse_ppl], counts, primary_metric="rouge_l").promote is True
    assert decide_promotion([rouge, worse_ppl], counts, primary_metric="perplexity").promote is False


def test_missing_primary_comparison_fails_closed():
    decision = decide_promotion([perplexity_comparison(10.0, 18.0, "base")], {"tuned": ZERO, "base": ZERO},
                                primary_metric="semantic_similarity")
    assert decision.promote is False
    assert "no paired comparison" in decision.checks[0].detail


@pytest.mark.parametrize("shift", [0.0, 0.001])
def test_noise_level_differences_are_not_promoted(shift):
    rng = np.random.default_rng(2)
    scores = rng.uniform(0, 1, 12)
    noisy = paired_mean_difference(scores + shift + rng.normal(0, 0.2, 12), scores, samples=1000)
    comparison = MetricComparison(metric="rouge_l", candidate="tuned", other="base", candidate_value=0.5,
                                  other_value=0.5, higher_is_better=True, interval=noisy)
    assert decide_promotion([comparison], {"tuned": ZERO, "base": ZERO}, primary_metric="rouge_l").promote is False
