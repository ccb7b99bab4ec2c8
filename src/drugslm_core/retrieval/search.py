"""Hybrid retrieval: BM25 and dense (MiniLM + FAISS) rankings fused by reciprocal rank, drug-name
aware, diversified by MMR, with abstention when the corpus has nothing about the question.

- **Fusion**: reciprocal-rank fusion (Cormack et al. 2009), ``sum 1 / (rrf_k + rank)`` over both
  rankings: it needs no score calibration between BM25 and cosine.
- **Drug names**: a question that names drugs of the index is answered from those drugs' leaflets
  only (their chunks are the candidates); other questions search everything.
- **MMR** (Carbonell & Goldstein 1998) on the stored unit vectors picks ``top_k`` chunks that are
  relevant and not near-copies of each other.
- **Abstention**: a question that names no drug of the index is answered only if its best dense
  cosine reaches ``min_score`` and every content word of it (4+ letters, not a stopword) occurs
  somewhere in the corpus. A question about a drug the leaflets never mention ("semaglutide")
  scores 0.5-0.6 against unrelated leaflets, as high as real matches, so similarity alone cannot
  tell; an unknown word can, and so can a drug-like word (an INN stem, ``data.drug_names``) that
  is no indexed drug, or a word the leaflets use only in their interactions sections (there they
  name the drugs the index has no leaflet for: digoxin, colchicine). Otherwise: no chunks, ``abstained`` set, and the reason says why.
  Known limit: a corpus drug asked about by a name the leaflets never use (a brand) abstains too.
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Any

from pydantic import BaseModel

from drugslm_core.config import RetrievalSettings
from drugslm_core.data.drug_names import drug_like_words
from drugslm_core.retrieval.chunks import Chunk
from drugslm_core.retrieval.embedding import Embedder
from drugslm_core.retrieval.index import RetrievalIndex, bm25_tokens


class Hit(BaseModel):
    chunk: Chunk
    score: float
    """Fused reciprocal-rank score."""
    dense: float
    """Cosine similarity of question and chunk."""


class RetrievalResult(BaseModel):
    query: str
    hits: list[Hit]
    abstained: bool
    named_drugs: list[str]
    best_dense: float
    reason: str = ""


class Retriever:
    def __init__(self, index: RetrievalIndex, settings: RetrievalSettings | None = None, embedder: Embedder | None = None) -> None:
        self.index = index
        self.settings = settings or RetrievalSettings()
        self.embedder = embedder or Embedder()
        self.positions = {chunk.chunk_id: i for i, chunk in enumerate(index.chunks)}

    @cached_property
    def _drug_patterns(self) -> list[tuple[str, re.Pattern[str]]]:
        return [(drug, re.compile(rf"(?<![a-z0-9]){re.escape(drug.lower())}(?![a-z0-9])")) for drug in self.index.drugs]

    def named_drugs(self, question: str) -> list[str]:
        text = question.lower()
        return [drug for drug, pattern in self._drug_patterns if pattern.search(text)]

    def search(self, question: str, top_k: int | None = None) -> RetrievalResult:
        import numpy as np

        settings = self.settings
        top_k = top_k or settings.top_k
        query = self.embedder.encode([question])
        named = self.named_drugs(question)
        allowed = (
            [i for i, chunk in enumerate(self.index.chunks) if chunk.drug in named] if named else list(range(len(self.index)))
        )
        # Dense: cosine against every allowed chunk (exact; FAISS ranks the whole index, we keep the allowed ones).
        scores, order = self.index.dense.search(query, len(self.index))
        dense = {int(p): float(s) for p, s in zip(order[0], scores[0]) if p >= 0}
        best = max((dense[p] for p in allowed), default=0.0)
        if not named:
            unknown = self.unknown_terms(question)
            other_drugs = sorted(drug_like_words(question) | set(self.interaction_only_terms(question)))
            reason = (f"best similarity {best:.2f} < {settings.min_score}" if best < settings.min_score
                      else f"words the leaflets never use: {', '.join(unknown)}" if unknown
                      else f"names a drug without a leaflet here: {', '.join(other_drugs)}" if other_drugs else "")
            if reason:
                return RetrievalResult(query=question, hits=[], abstained=True, named_drugs=[], best_dense=best,
                                       reason=f"no drug of the index named; {reason}")
        allowed_set = set(allowed)
        dense_rank = [p for p in sorted(dense, key=lambda p: -dense[p]) if p in allowed_set][: settings.candidates]
        bm25_scores = self._bm25_scores(question)
        lexical_rank = [p for p in np.argsort(-bm25_scores, kind="stable").tolist()
                        if p in allowed_set and bm25_scores[p] > 0][: settings.candidates]
        fused: dict[int, float] = {}
        for ranking in (dense_rank, lexical_rank):
            for rank, position in enumerate(ranking):
                fused[position] = fused.get(position, 0.0) + 1.0 / (settings.rrf_k + rank + 1)
        candidates = sorted(fused, key=lambda p: -fused[p])
        chosen = self._mmr(query[0], candidates, fused, top_k)
        hits = [Hit(chunk=self.index.chunks[p], score=fused[p], dense=dense.get(p, 0.0)) for p in chosen]
        return RetrievalResult(query=question, hits=hits, abstained=False, named_drugs=named, best_dense=best)

    @cached_property
    def _sections_of_term(self) -> dict[str, set[str]]:
        sections: dict[str, set[str]] = {}
        for chunk in self.index.chunks:
            for token in set(bm25_tokens(chunk.text)):
                sections.setdefault(token, set()).add(chunk.section)
        return sections

    def interaction_only_terms(self, question: str) -> list[str]:
        """Words of the question (6+ letters) that occur in the corpus only inside interactions sections."""
        return [token for token in dict.fromkeys(bm25_tokens(question))
                if len(token) >= 6 and self._sections_of_term.get(token) == {"interactions"}]

    def unknown_terms(self, question: str) -> list[str]:
        vocab = self.index.bm25.vocab_dict
        return [token for token in dict.fromkeys(bm25_tokens(question))
                if len(token) >= 4 and token.isalpha() and token not in vocab]

    def _bm25_scores(self, question: str) -> Any:
        import numpy as np

        vocab = self.index.bm25.vocab_dict
        tokens = [token for token in bm25_tokens(question) if token in vocab]
        if not tokens:
            return np.zeros(len(self.index), dtype="float32")
        return self.index.bm25.get_scores(tokens)

    def _mmr(self, query: Any, candidates: list[int], fused: dict[int, float], top_k: int) -> list[int]:
        """Greedy maximal marginal relevance: ``lambda * relevance - (1 - lambda) * max similarity to
        the chunks already chosen``; relevance is the fused score min-max scaled to [0, 1] over the
        candidates (raw reciprocal-rank scores are nearly flat, so unscaled they would let the
        redundancy term decide alone)."""
        if not candidates:
            return []
        vectors = self.index.vectors(candidates)
        top, bottom = max(fused[p] for p in candidates), min(fused[p] for p in candidates)
        relevance = [(fused[p] - bottom) / (top - bottom) if top > bottom else 1.0 for p in candidates]
        lam = self.settings.mmr_lambda
        chosen: list[int] = []
        remaining = list(range(len(candidates)))
        while remaining and len(chosen) < top_k:
            def gain(i: int) -> float:
                redundancy = max((float(vectors[i] @ vectors[j]) for j in chosen), default=0.0)
                return lam * relevance[i] - (1 - lam) * redundancy
            best = max(remaining, key=gain)
            chosen.append(best)
            remaining.remove(best)
        return [candidates[i] for i in chosen]
