"""Paired bootstrap confidence intervals for the difference between two models.

Both models are scored on the same items; each bootstrap replicate resamples
item indices once and applies them to both models, so item difficulty cancels
out of the difference (a paired test). Percentile intervals, numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel


class PairedInterval(BaseModel):
    """``candidate - other`` for a metric: the point estimate and its bootstrap interval."""

    difference: float
    low: float
    high: float
    confidence: float
    samples: int
    items: int

    def excludes_zero(self) -> bool:
        return self.low > 0.0 or self.high < 0.0


def _indices(items: int, samples: int, seed: int) -> np.ndarray:
    if items == 0:
        raise ValueError("cannot bootstrap over zero items")
    return np.random.default_rng(seed).integers(0, items, size=(samples, items))


def _interval(point: float, replicates: np.ndarray, confidence: float, samples: int, items: int) -> PairedInterval:
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(replicates, [tail, 1.0 - tail])
    return PairedInterval(
        difference=float(point), low=float(low), high=float(high), confidence=confidence, samples=samples, items=items
    )


def paired_mean_difference(
    candidate: Sequence[float],
    other: Sequence[float],
    samples: int = 2_000,
    confidence: float = 0.95,
    seed: int = 13,
) -> PairedInterval:
    """Interval for ``mean(candidate) - mean(other)`` over paired per-item scores."""
    a, b = np.asarray(candidate, dtype=float), np.asarray(other, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired scores must have the same length, got {a.shape} and {b.shape}")
    differences = a - b
    replicates = differences[_indices(len(differences), samples, seed)].mean(axis=1)
    return _interval(differences.mean(), replicates, confidence, samples, len(differences))


def paired_perplexity_difference(
    candidate_nll: Sequence[float],
    other_nll: Sequence[float],
    tokens: Sequence[int],
    samples: int = 2_000,
    confidence: float = 0.95,
    seed: int = 13,
) -> PairedInterval:
    """Interval for ``ppl(candidate) - ppl(other)``, perplexity being
    ``exp(sum of answer-token NLL / answer tokens)`` over the resampled items.
    ``*_nll`` are per-item NLL sums; ``tokens`` the per-item answer-token counts (the
    same for both models: same items, same tokenizer)."""
    a, b = np.asarray(candidate_nll, dtype=float), np.asarray(other_nll, dtype=float)
    t = np.asarray(tokens, dtype=float)
    if not (a.shape == b.shape == t.shape):
        raise ValueError("per-item NLL and token counts must have the same length")
    index = _indices(len(t), samples, seed)
    token_sums = t[index].sum(axis=1)
    replicates = np.exp(a[index].sum(axis=1) / token_sums) - np.exp(b[index].sum(axis=1) / token_sums)
    point = np.exp(a.sum() / t.sum()) - np.exp(b.sum() / t.sum())
    return _interval(point, replicates, confidence, samples, len(t))
