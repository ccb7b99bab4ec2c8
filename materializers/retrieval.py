"""The retrieval index: its folder (chunks, FAISS, BM25, manifest) copied into the artifact store,
with an HTML view of its counts and sample chunks."""

from __future__ import annotations

import os
from typing import Any, ClassVar

from zenml.enums import ArtifactType, VisualizationType
from zenml.io import fileio
from zenml.materializers.base_materializer import BaseMaterializer
from zenml.utils import io_utils

from drugslm_core.data.preview import html_table
from drugslm_core.retrieval.index import RetrievalIndex

INDEX = "index"
SAMPLE_CHUNKS = 50


class RetrievalIndexMaterializer(BaseMaterializer):
    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (RetrievalIndex,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.DATA

    def save(self, data: RetrievalIndex) -> None:
        # FAISS and bm25s write local files only: build the folder locally, then copy it to the (maybe remote) store.
        with self.get_temporary_directory(delete_at_exit=True) as local:
            data.save(local)
            io_utils.copy_dir(local, os.path.join(self.uri, INDEX))

    def load(self, data_type: type[Any]) -> RetrievalIndex:
        with self.get_temporary_directory(delete_at_exit=True) as local:
            io_utils.copy_dir(os.path.join(self.uri, INDEX), local)
            return RetrievalIndex.load(local)

    def save_visualizations(self, data: RetrievalIndex) -> dict[str, VisualizationType]:
        manifest = data.manifest
        counts = (
            "Index", ("chunks", "drugs", "embedding model", "dimension", "sources", "sections", "content hash"),
            [(manifest.chunks, manifest.drugs, manifest.embedding_model, manifest.dimension, manifest.sources,
              manifest.sections, manifest.content_hash)],
        )
        rows = ((c.chunk_id, c.drug, c.section, c.source, c.text, c.content_hash[:12]) for c in data.chunks[:SAMPLE_CHUNKS])
        html = html_table(
            "Retrieval index", f"{manifest.chunks} chunks of {manifest.drugs} drugs; FAISS (exact inner product) + BM25",
            ("chunk id", "drug", "section", "source", "text", "text sha256"), rows, len(data), SAMPLE_CHUNKS, before=counts,
        )
        path = os.path.join(self.uri, "index.html")
        with fileio.open(path, "w") as handle:
            handle.write(html)
        return {path.replace("\\", "/"): VisualizationType.HTML}

    def extract_metadata(self, data: RetrievalIndex) -> dict[str, Any]:
        manifest = data.manifest
        return {"chunks": manifest.chunks, "drugs": manifest.drugs, "content_hash": manifest.content_hash,
                "embedding_model": manifest.embedding_model, "sources": manifest.sources}
