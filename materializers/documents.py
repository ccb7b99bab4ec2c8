"""Source documents and raw payloads: stored exactly, shown as tables in the dashboard.

Raw payloads are written one file per body (named by its sha256) next to an index, so
the bytes a connector received can be opened directly from the artifact store.
"""

from __future__ import annotations

import json
import os
from typing import Any, ClassVar

from zenml.enums import ArtifactType, VisualizationType
from zenml.io import fileio
from zenml.materializers.base_materializer import BaseMaterializer

from drugslm_core.data.documents import DocumentBatch, RawPayload, RawPayloadBatch
from drugslm_core.data.preview import html_table
from materializers.records import PREVIEW_ROWS, _PreviewMaterializer

INDEX = "payloads.json"
BODIES = "bodies"


class DocumentBatchMaterializer(_PreviewMaterializer):
    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (DocumentBatch,)

    def render(self, data: DocumentBatch) -> str:
        rows = (
            (d.id, d.source, d.kind, d.title, d.language, ", ".join(s.name for s in d.sections),
             sum(len(s.text) for s in d.sections), d.url)
            for d in data.documents[:PREVIEW_ROWS]
        )
        return html_table(
            "Source documents", f"{len(data)} documents by source: {data.counts_by_source()}",
            ("id", "source", "kind", "title", "lang", "sections", "characters", "url"), rows, len(data), PREVIEW_ROWS,
        )

    def extract_metadata(self, data: DocumentBatch) -> dict[str, Any]:
        return {
            "documents": len(data), "by_source": data.counts_by_source(),
            "sections": sum(len(d.sections) for d in data.documents),
        }


class RawPayloadBatchMaterializer(BaseMaterializer):
    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (RawPayloadBatch,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.DATA

    def save(self, data: RawPayloadBatch) -> None:
        fileio.makedirs(os.path.join(self.uri, BODIES))
        index = []
        for payload in data.payloads:
            with fileio.open(os.path.join(self.uri, BODIES, payload.id), "wb") as handle:
                handle.write(payload.body)
            index.append(payload.model_dump(exclude={"body"}))
        with fileio.open(os.path.join(self.uri, INDEX), "w") as handle:
            handle.write(json.dumps(index, indent=1))

    def load(self, data_type: type[Any]) -> RawPayloadBatch:
        with fileio.open(os.path.join(self.uri, INDEX), "r") as handle:
            index = json.loads(handle.read())
        payloads = []
        for entry in index:
            with fileio.open(os.path.join(self.uri, BODIES, entry["id"]), "rb") as handle:
                payloads.append(RawPayload(**entry, body=handle.read()))
        return RawPayloadBatch(payloads=payloads)

    def save_visualizations(self, data: RawPayloadBatch) -> dict[str, VisualizationType]:
        path = os.path.join(self.uri, "preview.html")
        rows = ((p.source, p.url, p.status, p.content_type, len(p.body), p.id) for p in data.payloads[:PREVIEW_ROWS])
        with fileio.open(path, "w") as handle:
            handle.write(
                html_table(
                    "Raw payloads", f"{len(data)} responses, {data.total_bytes()} bytes (files under {BODIES}/)",
                    ("source", "url", "status", "content type", "bytes", "sha256"), rows, len(data), PREVIEW_ROWS,
                )
            )
        return {path.replace("\\", "/"): VisualizationType.HTML}

    def extract_metadata(self, data: RawPayloadBatch) -> dict[str, Any]:
        return {"payloads": len(data), "bytes": data.total_bytes()}
