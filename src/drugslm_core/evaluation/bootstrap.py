"""Paired bootstrap confidence intervals for the difference between two models.

Both models are scored on the same items; each bootstrap replicate resamples item indices once
and applies them to both models, so item difficulty cancels out of the difference (a paired
test): ``scipy.stats.bootstrap(..., paired=True)``. Percentile intervals, not scipy's default
BCa: BCa is undefined when every replicate is equal (two models scoring the same on every item,
which the gate must still decide on: a zero difference, interval [0, 0]).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from pydantic import BaseModel
from scipy.stats import bootstrap


class PairedInterval(BaseModel):
    """``candidate - other`` for a metric: the point estimate and its bootstrap interval."""

    difference: float
    low: float
    high: float
    confidence: float
    samples: int
    items: int


def _paired_interval(
    data: tuple[np.ndarray, ...], statistic: Callable[..., np.ndarray], samples: int, confidence: float, seed: int
) -> PairedInterval:
    items = len(data[0])
    if items == 0:
        raise ValueError("cannot bootstrap over zero items")
    point = float(statistic(*data, axis=-1))
    if items == 1:
        # Every resample of one item is that item: the interval is the point. scipy refuses
        # samples of fewer than two observations, so this case is answered here (a tiny run
        # evaluates RAG on a single benchmark question).
        return PairedInterval(difference=point, low=point, high=point, confidence=confidence, samples=samples, items=1)
    result = bootstrap(data, statistic, n_resamples=samples, paired=True, vectorized=True, axis=-1,
                       confidence_level=confidence, method="percentile", rng=np.random.default_rng(seed))
    return PairedInterval(
        difference=point, low=float(result.confidence_interval.low),
        high=float(result.confidence_interval.high), confidence=confidence, samples=samples, items=items,
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

    def mean_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.mean(x, axis=axis) - np.mean(y, axis=axis)

    return _paired_interval((a, b), mean_difference, samples, confidence, seed)


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

    def perplexity_difference(x: np.ndarray, y: np.ndarray, n: np.ndarray, axis: int = -1) -> np.ndarray:
        count = np.sum(n, axis=axis)
        return np.exp(np.sum(x, axis=axis) / count) - np.exp(np.sum(y, axis=axis) / count)

    return _paired_interval((a, b, t), perplexity_difference, samples, confidence, seed)
