"""Records and quarantine: JSON (exact round trip); the instruction dataset: Parquet. Each with an HTML preview."""

from __future__ import annotations

import io
import json
import os
from typing import Any, ClassVar

from zenml.enums import ArtifactType, VisualizationType
from zenml.io import fileio
from zenml.materializers.pydantic_materializer import PydanticMaterializer

from drugslm_core.data.formatting import InstructionDataset
from drugslm_core.data.preview import html_table
from drugslm_core.data.records import Quarantine, RecordBatch

PREVIEW_ROWS = 200


class _PreviewMaterializer(PydanticMaterializer):
    """Pydantic JSON storage with an HTML table next to it."""

    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.DATA

    def render(self, data: Any) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def save_visualizations(self, data: Any) -> dict[str, VisualizationType]:
        path = os.path.join(self.uri, "preview.html")
        with fileio.open(path, "w") as handle:
            handle.write(self.render(data))
        return {path.replace("\\", "/"): VisualizationType.HTML}


class RecordBatchMaterializer(_PreviewMaterializer):
    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (RecordBatch,)

    def render(self, data: RecordBatch) -> str:
        rows = (
            (r.id, r.focus, r.section, r.question, r.answer, r.source, r.locator, r.rejected)
            for r in data.records[:PREVIEW_ROWS]
        )
        files = (
            "Files read: each unit the file holds is one record",
            ("file", "format", "held", "unit", "records here", "how it was read"),
            [(c.source, c.format, c.held, c.unit, data.counts_by_source().get(c.source, 0), c.note) for c in data.files],
        ) if data.files else None
        return html_table(
            "Records", f"{len(data)} records by source: {data.counts_by_source()}",
            ("id", "focus", "section", "question", "answer", "source", "where", "rejected by reader"), rows, len(data),
            PREVIEW_ROWS, before=files,
        )

    def extract_metadata(self, data: RecordBatch) -> dict[str, Any]:
        return {
            "records": len(data), "by_source": data.counts_by_source(), "fingerprint": data.fingerprint(),
            "held_per_file": {c.source: c.held for c in data.files},
            "rejected_by_reader": sum(r.rejected is not None for r in data.records),
        }


class QuarantineMaterializer(_PreviewMaterializer):
    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (Quarantine,)

    def render(self, data: Quarantine) -> str:
        rows = (
            (i.record.id, i.record.source, i.record.locator, "; ".join(i.reasons), i.record.question,
             i.record.answer, i.record.raw)
            for i in data.items[:PREVIEW_ROWS]
        )
        files = (
            "Per file: held in the file = accepted + quarantined",
            ("file", "held", "accepted", "quarantined"),
            [(t.source, t.held, t.accepted, t.quarantined) for t in data.per_file],
        ) if data.per_file else None
        return html_table(
            "Quarantine", f"{len(data)} records rejected; reasons: {data.reason_counts()}",
            ("id", "source", "where", "reasons", "question", "answer", "unparsed row"), rows, len(data), PREVIEW_ROWS,
            before=files,
        )

    def extract_metadata(self, data: Quarantine) -> dict[str, Any]:
        return {
            "quarantined": len(data), "reasons": data.reason_counts(),
            "per_file": {t.source: {"held": t.held, "accepted": t.accepted, "quarantined": t.quarantined}
                         for t in data.per_file},
        }


DATASET_FILE = "dataset.parquet"
DATASET_COLUMNS = ("id", "focus", "section", "question", "answer", "prompt", "completion")
DATASET_META_KEY = b"drugslm.instruction_dataset"


class InstructionDatasetMaterializer(_PreviewMaterializer):
    """Examples as a Parquet table (one row per example, readable by pandas/DuckDB/Spark);
    the dataset's own fields (domain tag, system prompt, base-model hash) in the schema metadata."""

    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (InstructionDataset,)

    def save(self, data: InstructionDataset) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = pa.schema(
            [pa.field(name, pa.string(), nullable=(name == "section")) for name in DATASET_COLUMNS],
            metadata={DATASET_META_KEY: json.dumps(data.model_dump(exclude={"examples"})).encode()},
        )
        table = pa.Table.from_pylist([e.model_dump() for e in data.examples], schema=schema)
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        with fileio.open(os.path.join(self.uri, DATASET_FILE), "wb") as handle:
            handle.write(buffer.getvalue())

    def load(self, data_type: type[Any]) -> InstructionDataset:
        import pyarrow.parquet as pq

        with fileio.open(os.path.join(self.uri, DATASET_FILE), "rb") as handle:
            table = pq.read_table(io.BytesIO(handle.read()))
        fields = json.loads(table.schema.metadata[DATASET_META_KEY])
        return InstructionDataset(examples=table.to_pylist(), **fields)

    def render(self, data: InstructionDataset) -> str:
        rows = ((e.id, e.focus, e.section, e.prompt, e.completion) for e in data.examples[:PREVIEW_ROWS])
        return html_table(
            "Instruction dataset", f"{len(data)} examples, domain tag {data.domain_tag!r}",
            ("id", "focus", "section", "prompt (masked from loss)", "completion (trained on)"),
            rows, len(data), PREVIEW_ROWS,
        )

    def extract_metadata(self, data: InstructionDataset) -> dict[str, Any]:
        return {
            "examples": len(data),
            "foci": len({e.focus for e in data.examples}),
            "fingerprint": data.fingerprint(),
            "domain_tag": data.domain_tag,
        }
