"""The raw_records and quarantine views after a real ingest → clean → gate of the bad-input corpus:
per-file counts (held = accepted + quarantined) in the HTML and the metadata, exact round trip,
and no personal data anywhere in what the dashboard shows."""

from __future__ import annotations

from pathlib import Path

from drugslm_core.config import CleaningSettings, DataSettings, SourceFile, ValidationSettings
from drugslm_core.data.ingest import ingest_sources
from drugslm_core.data.transform import clean_records
from drugslm_core.quality.gate import apply_quality_gate
from materializers import QuarantineMaterializer, RecordBatchMaterializer

CORPUS = Path(__file__).resolve().parents[1] / "data" / "bad_inputs"
PERSONAL = ["maria.souza@example.com", "12345678909", "123 45 6789", "+5511987654321", "98765-4321", "415-555-2671"]


def roundtrip(materializer_class, data, root: Path):
    uri = root / materializer_class.__name__
    uri.mkdir()
    materializer = materializer_class(str(uri))
    materializer.save(data)
    views = materializer.save_visualizations(data)
    loaded = materializer_class(str(uri)).load(type(data))
    return loaded, [Path(p).read_text(encoding="utf-8") for p in views], materializer.extract_metadata(data)


def test_views_show_per_file_counts_and_no_personal_data(store_dir):
    files = [SourceFile(path=CORPUS / name) for name in ("pii_everywhere.jsonl", "unbalanced_quote.csv", "ragged.csv")]
    ingested = ingest_sources(DataSettings(include_sample_corpus=False, files=files))
    cleaned = clean_records(ingested.records, ingested.documents, CleaningSettings())
    gate = apply_quality_gate(cleaned.records, ValidationSettings(), upstream=cleaned.duplicates)

    loaded, [raw_html], raw_meta = roundtrip(RecordBatchMaterializer, ingested.records, store_dir)
    assert loaded == ingested.records  # the artifact keeps what the sources held, exactly
    assert raw_meta["held_per_file"] == {str(CORPUS / "pii_everywhere.jsonl"): 3, str(CORPUS / "unbalanced_quote.csv"): 100,
                                         str(CORPUS / "ragged.csv"): 5}
    assert raw_meta["rejected_by_reader"] == 3
    assert "Files read" in raw_html and "unparsable_row" in raw_html and "ragged_row: row 3 has 4 fields" in raw_html
    for value in PERSONAL:
        assert value not in raw_html, value  # the view is scrubbed, the artifact is not

    loaded, [quarantine_html], meta = roundtrip(QuarantineMaterializer, gate.quarantine, store_dir)
    assert loaded == gate.quarantine
    assert meta["per_file"][str(CORPUS / "unbalanced_quote.csv")] == {"held": 100, "accepted": 99, "quarantined": 1}
    for tally in meta["per_file"].values():
        assert tally["held"] == tally["accepted"] + tally["quarantined"]
    assert "held in the file = accepted + quarantined" in quarantine_html
    assert "u11,Drug11," in quarantine_html  # the unparsed row is shown
    everything = quarantine_html + loaded.model_dump_json()
    for value in PERSONAL:
        assert value not in everything, value
