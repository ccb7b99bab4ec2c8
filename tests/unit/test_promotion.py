"""The champion promotion rule (drugslm_core.evaluation.promotion)."""

from __future__ import annotations

import pytest

from drugslm_core.evaluation.promotion import decide_promotion


def test_promotes_when_better_than_base_and_no_champion():
    decision = decide_promotion(tuned_perplexity=8.0, base_perplexity=12.0, champion_perplexity=None)
    assert decision.promote is True
    assert "no current champion" in decision.reasons
    assert any("base 12.000" in reason and "<" in reason for reason in decision.reasons)
    assert decision.summary.startswith("promote to champion: ")


@pytest.mark.parametrize("tuned", [12.0, 12.5])
def test_refuses_when_not_better_than_base(tuned):
    decision = decide_promotion(tuned_perplexity=tuned, base_perplexity=12.0, champion_perplexity=None)
    assert decision.promote is False
    assert any(">=" in reason and "base 12.000" in reason for reason in decision.reasons)
    assert decision.summary.startswith("keep current champion: ")


def test_refuses_when_worse_than_champion_even_if_better_than_base():
    decision = decide_promotion(tuned_perplexity=9.0, base_perplexity=12.0, champion_perplexity=8.5)
    assert decision.promote is False
    base_reason, champion_reason = decision.reasons
    assert "base 12.000" in base_reason and "<" in base_reason
    assert "champion 8.500" in champion_reason and ">=" in champion_reason


def test_promotes_when_better_than_base_and_champion():
    decision = decide_promotion(tuned_perplexity=8.0, base_perplexity=12.0, champion_perplexity=8.5)
    assert decision.promote is True
    assert len(decision.reasons) == 2
    assert "no current champion" not in decision.reasons
    assert any("base" in r for r in decision.reasons) and any("champion" in r for r in decision.reasons)


def test_refuses_when_equal_to_champion():
    assert decide_promotion(8.5, 12.0, 8.5).promote is False


@pytest.mark.parametrize(
    ("tuned", "promote"),
    [(8.999, True), (9.0, False), (9.5, False)],
)
def test_min_relative_improvement_boundary_against_base(tuned, promote):
    # base 10, 10% margin: tuned must be strictly below 9.0
    decision = decide_promotion(tuned, 10.0, None, min_relative_improvement=0.1)
    assert decision.promote is promote
    assert any("needed < 9.000" in reason for reason in decision.reasons)


@pytest.mark.parametrize(
    ("tuned", "promote"),
    [(7.199, True), (7.2, False)],
)
def test_min_relative_improvement_boundary_against_champion(tuned, promote):
    # champion 8, 10% margin: needed < 7.2; base 20 is beaten comfortably
    decision = decide_promotion(tuned, 20.0, 8.0, min_relative_improvement=0.1)
    assert decision.promote is promote
    assert "needed < 7.200" in decision.reasons[-1]


def test_no_margin_text_without_margin():
    decision = decide_promotion(8.0, 12.0, 9.0)
    assert all("needed" not in reason for reason in decision.reasons)
