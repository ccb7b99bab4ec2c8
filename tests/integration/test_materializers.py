"""Materializers of the data artifacts: exact round trip through the active (local) ZenML artifact
store, dashboard views (HTML) and metadata. Each test writes under its own folder in the store
and removes it afterwards."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from drugslm_core.config import ValidationSettings
from drugslm_core.data.documents import Document, DocumentBatch, DocumentSection, RawPayload, RawPayloadBatch
from drugslm_core.data.formatting import InstructionDataset, InstructionExample
from drugslm_core.data.questions import ConversionStats
from drugslm_core.data.records import QARecord, Quarantine, QuarantinedRecord, RecordBatch
from drugslm_core.data.transform import CleaningStats
from drugslm_core.quality.gate import apply_quality_gate
from materializers import (
    CleaningStatsMaterializer,
    DocumentBatchMaterializer,
    InstructionDatasetMaterializer,
    QuarantineMaterializer,
    RawPayloadBatchMaterializer,
    RecordBatchMaterializer,
    ValidationResultMaterializer,
)


def roundtrip(materializer_class, data, tmp_path: Path):
    uri = str(tmp_path / "artifact")
    Path(uri).mkdir(parents=True, exist_ok=True)
    materializer = materializer_class(uri)
    materializer.save(data)
    views = materializer.save_visualizations(data)
    metadata = materializer.extract_metadata(data)
    loaded = materializer_class(uri).load(type(data))
    htmls = [Path(path).read_text(encoding="utf-8") for path in views]
    return loaded, htmls, metadata


RECORDS = RecordBatch(
    records=[
        QARecord(id="a", question="What is <x> used for?", answer="Pain.\n\nFever ∅ 25 °C", focus="Aspirin",
                 source="s.json", locator="record 0", section="indications"),
        QARecord(id=None, question=None, answer="", focus="Aspirin", source="s.json", locator="record 1"),
    ]
)


def test_record_batch_and_quarantine(store_dir):
    loaded, [html], metadata = roundtrip(RecordBatchMaterializer, RECORDS, store_dir / "r")
    assert loaded == RECORDS
    assert "What is &lt;x&gt; used for?" in html
    assert metadata["records"] == 2 and metadata["fingerprint"] == RECORDS.fingerprint()
    quarantine = Quarantine(items=[QuarantinedRecord(record=RECORDS.records[1], reasons=["duplicate_of:a (exact)", "empty: x"])])
    loaded, [html], metadata = roundtrip(QuarantineMaterializer, quarantine, store_dir / "q")
    assert loaded == quarantine
    assert "duplicate_of:a (exact); empty: x" in html
    assert metadata["reasons"] == {"duplicate_of": 1, "empty": 1}


def test_instruction_dataset_is_parquet_and_loads_back_exactly(store_dir):
    dataset = InstructionDataset(
        examples=[
            InstructionExample(id=f"e{i}", focus="Aspirin", section=None if i else "dosage", question=f"Q{i}?",
                               answer="Ünïcode ✓", prompt=f"<|im_start|>user\nQ{i}?", completion="A<|im_end|>\n")
            for i in range(3)
        ],
        domain_tag="<|domain:drug-information|>", system_prompt="Be careful.", base_model_sha256="abc123",
    )
    loaded, [html], metadata = roundtrip(InstructionDatasetMaterializer, dataset, store_dir)
    assert loaded == dataset
    assert loaded.fingerprint() == dataset.fingerprint() == metadata["fingerprint"]
    table = pq.read_table(store_dir / "artifact" / "dataset.parquet")
    assert table.num_rows == 3 and table.column_names[:3] == ["id", "focus", "section"]
    assert "prompt (masked from loss)" in html
    empty, _, _ = roundtrip(InstructionDatasetMaterializer, InstructionDataset(domain_tag="t"), store_dir / "empty")
    assert empty == InstructionDataset(domain_tag="t")


def test_documents_and_raw_payloads(store_dir):
    documents = DocumentBatch(documents=[Document(
        id="openfda:1", title="X", source="openfda", locator="skip=0 result 0", kind="label",
        sections=[DocumentSection(name="dosage", heading="dosage_and_administration", text="One a day.")],
        metadata={"set_id": "1"}, payload_ids=["p"],
    )])
    loaded, [html], metadata = roundtrip(DocumentBatchMaterializer, documents, store_dir / "d")
    assert loaded == documents and metadata == {"documents": 1, "by_source": {"openfda": 1}, "sections": 1}
    assert "openfda:1" in html
    bodies = [b"%PDF-1.4 \x00\xff binary", b'{"results": []}']
    payloads = RawPayloadBatch(payloads=[
        RawPayload(id=RawPayload.digest(b), source="anvisa", url=f"http://127.0.0.1/{i}", status=200,
                   content_type="application/pdf", body=b)
        for i, b in enumerate(bodies)
    ])
    loaded, [html], metadata = roundtrip(RawPayloadBatchMaterializer, payloads, store_dir / "p")
    assert loaded == payloads
    assert (store_dir / "p" / "artifact" / "bodies" / payloads.payloads[0].id).read_bytes() == bodies[0]
    assert metadata == {"payloads": 2, "bytes": sum(map(len, bodies))}


def test_validation_result_and_cleaning_stats(store_dir):
    upstream = Quarantine(items=[QuarantinedRecord(record=RECORDS.records[0], reasons=["duplicate_of:z (exact)"])])
    gate = apply_quality_gate(RECORDS, ValidationSettings(min_answer_chars=3), upstream=upstream)
    result = gate.summary()
    loaded, [html], metadata = roundtrip(ValidationResultMaterializer, result, store_dir / "v")
    assert loaded == result
    assert "Data validation (Great Expectations)" in html and "duplicate_of:z" in html
    assert metadata["records_in"] == 3 and metadata["accepted"] + metadata["quarantined"] == 3
    stats = CleaningStats(records_in=5, records_out=4, duplicates_exact=1, pii={"email": 2},
                          from_documents=ConversionStats(documents=1, records=2, by_section={"dosage": 2}))
    loaded, [html], metadata = roundtrip(CleaningStatsMaterializer, stats, store_dir / "c")
    assert loaded == stats
    assert "5 = 4 + 1" in html and "PII replaced: email" in html
    assert metadata["pii"] == {"email": 2}


@pytest.mark.parametrize("materializer", [RecordBatchMaterializer, QuarantineMaterializer, InstructionDatasetMaterializer])
def test_materializers_claim_their_types(materializer):
    assert len(materializer.ASSOCIATED_TYPES) == 1
