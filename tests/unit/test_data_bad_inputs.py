"""The bad-input corpus (tests/data/bad_inputs): each file fails with an error naming the file
(and record and field where there is one), or its bad records are quarantined with a reason.
Records in = accepted + quarantined, for the corpus, for real MedQuAD data and for random input."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drugslm_core.config import ChunkingSettings, CleaningSettings, DataSettings, SourceFile, ValidationSettings
from drugslm_core.data.documents import Document, DocumentBatch, DocumentSection
from drugslm_core.data.ingest import ingest_sources
from drugslm_core.data.records import QARecord, RecordBatch
from drugslm_core.data.sources import SourceFormatError
from drugslm_core.data.transform import clean_records
from drugslm_core.quality.gate import apply_quality_gate

CORPUS = Path(__file__).resolve().parents[1] / "data" / "bad_inputs"
MEDQUAD = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "medquad"
VALIDATION = ValidationSettings()


def run_data_flow(raw: RecordBatch, documents: DocumentBatch, cleaning: CleaningSettings | None = None):
    cleaned = clean_records(raw, documents, cleaning or CleaningSettings())
    gate = apply_quality_gate(cleaned.records, VALIDATION, upstream=cleaned.duplicates)
    return cleaned, gate


def process(path: Path):
    ingested = ingest_sources(DataSettings(include_sample_corpus=False, files=[SourceFile(path=path)]))
    return run_data_flow(ingested.records, ingested.documents)


# --- files that cannot be read: one clear error each -------------------------------------------------

ERRORS = {
    "truncated.json": ("invalid JSON (Unterminated string starting at at line 2, column 27)", None, None),
    "empty.jsonl": ("file is empty", None, None),
    "binary.json": ("looks like a binary file", None, None),
    "not_a_pdf.pdf": ("not a PDF", None, None),
    "truncated.pdf": ("not a readable PDF", None, None),
    "wrong_root.xml": ("expected a MedQuAD <Document> root (or <DiseaseFile>, <doc>), got <Root>", None, None),
    "no_answer_column.csv": ("no answer field found", None, "answer"),
    "entities.xml": ("refused XML: DTDForbidden", None, None),
}


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_unreadable_file_error_names_file_record_and_field(name):
    message, record, field = ERRORS[name]
    path = CORPUS / name
    with pytest.raises(SourceFormatError) as caught:
        process(path)
    error = caught.value
    assert error.path == str(path)
    assert str(error).startswith(str(path))
    assert message in str(error)
    assert (error.record, error.field) == (record, field)
    if record:
        assert record in str(error)
    if field:
        assert f"field {field!r}" in str(error)


# --- files that can be read: bad records quarantined with reasons -------------------------------------

QUARANTINED = {
    # file: (accepted ids, {quarantined id: reason kinds})
    "huge_line.jsonl": ({"g1"}, {"huge": ["length"]}),
    "missing_fields.json": (
        {"g1", "missing_fields.json:record 3"},
        {"m-no-answer": ["missing"], "m-null-question": ["missing"]},
    ),
    "duplicates.jsonl": (
        {"g1", "g2", "near-1"},
        {"dup-exact": ["duplicate_of"], "dup-spacing": ["duplicate_of"], "g2": ["duplicate_of"], "near-2": ["duplicate_of"]},
    ),
    "html_junk.json": ({"h1", "h3"}, {"h2": ["empty", "length"]}),
    "non_object_line.jsonl": ({"g1"}, {"non_object_line.jsonl:line 2": ["wrong_type"]}),
    "empty_answers.xml": ({"MPlusDrugs:0000099-1"}, {"MPlusDrugs:0000099-2": ["empty", "length"], "MPlusDrugs:0000099-3": ["empty", "length"]}),
}


@pytest.mark.parametrize("name", sorted(QUARANTINED))
def test_bad_records_are_quarantined_with_reasons(name):
    accepted_ids, quarantined = QUARANTINED[name]
    cleaned, gate = process(CORPUS / name)
    assert gate.records_in == cleaned.stats.records_in
    assert len(gate.accepted) + len(gate.quarantine) == gate.records_in
    assert {r.id for r in gate.accepted.records} == accepted_ids
    got = {item.record.id: sorted({reason.split(":")[0] for reason in item.reasons}) for item in gate.quarantine.items}
    assert got == quarantined
    for item in gate.quarantine.items:
        assert item.record.source == str(CORPUS / name) and item.record.locator


def test_duplicate_reasons_name_the_kept_record():
    _, gate = process(CORPUS / "duplicates.jsonl")
    reasons = {item.record.locator: item.reasons for item in gate.quarantine.items}
    assert reasons == {
        "line 2": ["duplicate_of:g1 (exact)"], "line 3": ["duplicate_of:g1 (exact)"],
        "line 5": ["duplicate_of:g2 (exact)"], "line 7": [reasons["line 7"][0]],
    }
    assert reasons["line 7"][0].startswith("duplicate_of:near-1 (near, similarity ")


def test_html_junk_is_cleaned():
    cleaned, gate = process(CORPUS / "html_junk.json")
    by_id = {r.id: r for r in gate.accepted.records}
    assert by_id["h1"].question == "What is amoxicillin used for?"
    assert by_id["h1"].answer == "Amoxicillin treats bacterial infections such as otitis & sinusitis."
    assert by_id["h3"].answer == "People allergic to penicillin. Contact [EMAIL] or call [PHONE]."
    assert cleaned.stats.pii == {"email": 1, "phone": 1}
    assert cleaned.stats.boilerplate_lines == 2 and cleaned.stats.emptied == 1


def test_the_whole_corpus_directory_stops_at_the_first_unreadable_file():
    with pytest.raises(SourceFormatError) as caught:
        ingest_sources(DataSettings(include_sample_corpus=False, files=[SourceFile(path=CORPUS)]))
    assert Path(caught.value.path).name == "binary.json"  # sorted order: the first bad file


# --- real data: MedQuAD MedlinePlus drugs (empty answers by design) ------------------------------------


@pytest.mark.skipif(not (MEDQUAD / "11_MPlusDrugs_QA").is_dir(), reason="../shared/data/medquad is absent")
def test_medquad_drug_answers_are_accounted_for(tmp_path):
    subset = tmp_path / "11_MPlusDrugs_QA"
    subset.mkdir()
    for path in sorted((MEDQUAD / "11_MPlusDrugs_QA").glob("*.xml"))[:40]:
        (subset / path.name).write_bytes(path.read_bytes())
    cleaned, gate = process(subset)
    assert gate.records_in > 100
    assert len(gate.accepted) + len(gate.quarantine) == gate.records_in
    reasons = gate.quarantine.reason_counts()
    assert reasons.get("empty", 0) > 0  # MedQuAD withheld these answers (licence): empty by design
    assert all(item.reasons for item in gate.quarantine.items)
    assert all(r.answer and r.answer.strip() for r in gate.accepted.records)


# --- property: records in = accepted + quarantined, whatever comes in -----------------------------------

FRAGMENTS = [
    "Take one tablet daily.", "<p>Store below 25 °C</p>", "<script>x()</script>", "Page 2 of 9", "call (555) 123-4567",
    "mail a@b.org", "  ", "\u200b", "&amp;", "Who should not take it?", "x" * 50, "É proibido.", "\n\n",
]
texts = st.one_of(
    st.none(),
    st.text(max_size=40),
    st.lists(st.sampled_from(FRAGMENTS), max_size=6).map(" ".join),
)
records = st.lists(
    st.tuples(st.one_of(st.none(), st.sampled_from(["a", "b", "c", "d"])), texts, texts), max_size=25
)
sections = st.lists(
    st.tuples(st.sampled_from(["dosage", "storage", "mystery"]), st.lists(st.sampled_from(FRAGMENTS), max_size=80).map(" ".join)),
    max_size=3,
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=records, docs=st.lists(sections, max_size=2), strategy=st.sampled_from(["fixed", "sentence", "recursive"]))
def test_records_in_equal_accepted_plus_quarantined(rows, docs, strategy):
    raw = RecordBatch(records=[
        QARecord(id=id, question=q, answer=a, focus="F", source="prop", locator=f"row {i}") for i, (id, q, a) in enumerate(rows)
    ])
    documents = DocumentBatch(documents=[
        Document(id=f"d{j}", title="Drug", source="prop", locator=f"doc {j}", kind="leaflet",
                 sections=[DocumentSection(name=n, heading=n, text=t) for n, t in secs])
        for j, secs in enumerate(docs)
    ])
    cleaning = CleaningSettings(chunking=ChunkingSettings(strategy=strategy, max_chars=200))
    cleaned, gate = run_data_flow(raw, documents, cleaning)
    expected_in = len(raw) + cleaned.stats.from_documents.records
    assert gate.records_in == cleaned.stats.records_in == expected_in
    assert len(gate.accepted) + len(gate.quarantine) == expected_in
    seen = Counter((r.source, r.locator) for r in gate.accepted.records)
    seen.update((i.record.source, i.record.locator) for i in gate.quarantine.items)
    assert all(count == 1 for count in seen.values())  # nobody counted twice, nobody lost
    assert {loc for src, loc in seen if src == "prop" and loc.startswith("row ")} == {f"row {i}" for i in range(len(rows))}
    assert all(item.reasons for item in gate.quarantine.items)
