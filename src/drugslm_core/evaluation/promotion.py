"""Decide whether a tuned model becomes the champion."""

from __future__ import annotations

from pydantic import BaseModel


class PromotionDecision(BaseModel):
    promote: bool
    reasons: list[str]

    @property
    def summary(self) -> str:
        verdict = "promote to champion" if self.promote else "keep current champion"
        return f"{verdict}: " + "; ".join(self.reasons)


def decide_promotion(
    tuned_perplexity: float,
    base_perplexity: float,
    champion_perplexity: float | None,
    min_relative_improvement: float = 0.0,
) -> PromotionDecision:
    """Promote only when tuned beats base, and the current champion if there is one,
    each by at least ``min_relative_improvement`` (a share of the other's perplexity)."""
    reasons = []
    promote = True
    contenders = [("base", base_perplexity)]
    if champion_perplexity is not None:
        contenders.append(("champion", champion_perplexity))
    else:
        reasons.append("no current champion")
    for label, other in contenders:
        needed = other * (1.0 - min_relative_improvement)
        better = tuned_perplexity < needed
        promote &= better
        reasons.append(
            f"tuned perplexity {tuned_perplexity:.3f} {'<' if better else '>='} "
            f"{label} {other:.3f}"
            + (f" (needed < {needed:.3f})" if min_relative_improvement else "")
        )
    return PromotionDecision(promote=promote, reasons=reasons)
