"""The retrieval index: chunks, their MiniLM vectors in FAISS, and a BM25 index over the same chunks.

Saved as a folder (``save``/``load``) so it can be an artifact: ``chunks.jsonl``, ``dense.faiss``,
``bm25/`` (bm25s's own files) and ``manifest.json`` with the counts and the content hash. The
content hash covers the chunk ids, their text hashes, the embedding model and the BM25 tokenizer,
so the same corpus gives the same hash and a registered model version can name the index it was
evaluated with.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from drugslm_core.config import RetrievalSettings
from drugslm_core.data.questions import QUESTION_TEMPLATES
from drugslm_core.data.records import QARecord
from drugslm_core.retrieval.chunks import Chunk, build_chunks
from drugslm_core.retrieval.embedding import EMBEDDING_MODEL, Embedder

CHUNKS_FILE = "chunks.jsonl"
DENSE_FILE = "dense.faiss"
BM25_DIR = "bm25"
MANIFEST_FILE = "manifest.json"
TOKENIZER = "lower-words-v1+section-question"

_WORD = re.compile(r"[a-z0-9]+(?:\.[0-9]+)?")


_QUESTION_WORDS = frozenset({"what", "which", "when", "where", "why", "how", "who", "whom", "whose", "does", "should",
                             "could", "would", "can", "tell", "please", "much", "many"})


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    # bm25s's English list keeps question words; a question's "what" says nothing about the leaflet it needs.
    return frozenset(STOPWORDS_EN) | _QUESTION_WORDS


def bm25_tokens(text: str) -> list[str]:
    """Lower-case words and numbers (``2.5`` stays one token: doses must match exactly), English stopwords out.
    Our own tokenizer rather than bm25s's so that query and corpus are cut the same way in every process."""
    stop = _stopwords()
    return [token for token in _WORD.findall(text.lower()) if token not in stop]


class IndexManifest(BaseModel):
    content_hash: str
    chunks: int
    drugs: int
    sources: dict[str, int]
    sections: dict[str, int]
    embedding_model: str
    dimension: int
    tokenizer: str = TOKENIZER


def indexed_text(chunk: Chunk) -> str:
    """What both indexes see of a chunk: the question its section answers (the data layer's English
    template, doc2query-style expansion: "Which medicines interact with X?" lets a question about
    combining medicines find a section that only lists drug names), then the chunk's text."""
    template = QUESTION_TEMPLATES["en"].get(chunk.section, QUESTION_TEMPLATES["en"]["other"])
    question = template.replace("{drug}", chunk.drug).replace("{heading}", chunk.section.replace("_", " "))
    return f"{question} {chunk.text}"


def index_hash(chunks: list[Chunk], embedding_model: str = EMBEDDING_MODEL) -> str:
    digest = hashlib.sha256(f"{embedding_model}|{TOKENIZER}".encode())
    for chunk in chunks:
        digest.update(f"\n{chunk.chunk_id}|{chunk.content_hash}".encode())
    return digest.hexdigest()


class RetrievalIndex:
    """Chunks + dense FAISS index + BM25 index. Build with :meth:`build`, persist with :meth:`save`/:meth:`load`."""

    def __init__(self, chunks: list[Chunk], dense: Any, bm25: Any, manifest: IndexManifest) -> None:
        self.chunks = chunks
        self.dense = dense
        self.bm25 = bm25
        self.manifest = manifest
        self.by_id = {chunk.chunk_id: chunk for chunk in chunks}
        self.drugs = sorted({chunk.drug for chunk in chunks}, key=str.lower)

    @property
    def content_hash(self) -> str:
        return self.manifest.content_hash

    def __len__(self) -> int:
        return len(self.chunks)

    @classmethod
    def build(cls, chunks: list[Chunk], embedder: Embedder | None = None) -> RetrievalIndex:
        import bm25s
        import faiss

        if not chunks:
            raise ValueError("cannot build a retrieval index from zero chunks (no accepted record has an answer)")
        ids = [chunk.chunk_id for chunk in chunks]
        duplicates = [chunk_id for chunk_id, count in Counter(ids).items() if count > 1]
        if duplicates:
            raise ValueError(f"chunk ids must be unique; repeated: {duplicates[:5]}")
        embedder = embedder or Embedder()
        vectors = embedder.encode([indexed_text(chunk) for chunk in chunks])
        dense = faiss.IndexFlatIP(vectors.shape[1])  # exact search: a leaflet corpus is thousands of chunks, not millions
        dense.add(vectors)
        bm25 = bm25s.BM25()
        bm25.index([bm25_tokens(indexed_text(chunk)) or ["_"] for chunk in chunks], show_progress=False)
        manifest = IndexManifest(
            content_hash=index_hash(chunks, embedder.name), chunks=len(chunks),
            drugs=len({chunk.drug.lower() for chunk in chunks}),
            sources=dict(Counter(chunk.source for chunk in chunks)),
            sections=dict(Counter(chunk.section for chunk in chunks)),
            embedding_model=embedder.name, dimension=int(vectors.shape[1]),
        )
        return cls(chunks, dense, bm25, manifest)

    def vectors(self, positions: list[int]) -> Any:
        """The stored unit vectors of the chunks at ``positions`` (for MMR)."""
        import numpy as np

        return np.stack([self.dense.reconstruct(int(p)) for p in positions]) if positions else np.zeros((0, self.manifest.dimension), "float32")

    def save(self, directory: str | Path) -> None:
        import faiss

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / CHUNKS_FILE, "w", encoding="utf-8") as handle:
            for chunk in self.chunks:
                handle.write(chunk.model_dump_json() + "\n")
        faiss.write_index(self.dense, str(directory / DENSE_FILE))
        self.bm25.save(str(directory / BM25_DIR), show_progress=False)
        (directory / MANIFEST_FILE).write_text(self.manifest.model_dump_json(indent=2), encoding="utf-8")

    @classmethod
    def load(cls, directory: str | Path) -> RetrievalIndex:
        import bm25s
        import faiss

        directory = Path(directory)
        manifest_path = directory / MANIFEST_FILE
        if not manifest_path.is_file():
            raise FileNotFoundError(f"{directory} is not a retrieval index: no {MANIFEST_FILE}")
        manifest = IndexManifest.model_validate_json(manifest_path.read_text(encoding="utf-8"))
        chunks = []
        with open(directory / CHUNKS_FILE, encoding="utf-8") as handle:
            for line_number, line in enumerate(handle, 1):
                try:
                    chunks.append(Chunk.model_validate_json(line))
                except ValueError as error:
                    raise ValueError(f"{directory / CHUNKS_FILE} line {line_number}: {error}") from error
        dense = faiss.read_index(str(directory / DENSE_FILE))
        bm25 = bm25s.BM25.load(str(directory / BM25_DIR), show_progress=False)
        if index_hash(chunks, manifest.embedding_model) != manifest.content_hash or dense.ntotal != len(chunks):
            raise ValueError(f"{directory}: chunks do not match the manifest's content hash or the dense index size")
        return cls(chunks, dense, bm25, manifest)


def build_index(records: Iterable[QARecord], settings: RetrievalSettings) -> RetrievalIndex:
    """The index of ``records`` (the accepted records) cut as ``settings`` says."""
    return RetrievalIndex.build(
        build_chunks(records, settings.chunk_strategy, settings.chunk_max_chars, settings.chunk_overlap_chars)
    )
