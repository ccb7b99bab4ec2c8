"""PDF leaflets: text extraction with pypdf and section detection, on PDFs the tests generate."""

from __future__ import annotations

import pytest

from drugslm_core.config import ChunkingSettings, DataSettings, SourceFile
from drugslm_core.data.connectors.pdf import pdf_leaflet_document, read_pdf_leaflet
from drugslm_core.data.ingest import ingest_sources
from drugslm_core.data.questions import document_records
from drugslm_core.data.sources import SourceFormatError
from tests.data.pdf_factory import ENGLISH_LEAFLET, PORTUGUESE_LEAFLET, empty_pdf, make_pdf


def test_english_leaflet_sections(tmp_path):
    path = tmp_path / "examplamine.pdf"
    path.write_bytes(make_pdf(ENGLISH_LEAFLET, pages=2))
    document = read_pdf_leaflet(path)
    assert document.title == "Examplamine 10 mg tablets"
    assert [s.name for s in document.sections] == [
        "indications", "dosage", "contraindications", "adverse_reactions", "interactions", "storage",
    ]
    by_name = {s.name: s.text for s in document.sections}
    assert by_name["indications"] == (
        "Examplamine is used to treat high blood pressure in adults. It may be used alone or with other "
        "medicines that lower blood pressure."
    )
    assert by_name["storage"] == "Store below 25 °C in the original package to protect from moisture."
    assert document.metadata["pages"] == "2"
    assert document.kind == "leaflet" and document.source == str(path)


def test_portuguese_leaflet_sections_and_questions():
    document = pdf_leaflet_document(make_pdf(PORTUGUESE_LEAFLET), "mem.pdf", "unit", drug="Exemplamina", language="pt")
    assert [s.name for s in document.sections] == ["indications", "warnings", "storage", "dosage"]
    records, _ = document_records(document, ChunkingSettings())
    assert [r.question for r in records] == [
        "Para que serve Exemplamina?", "O que devo saber antes de usar Exemplamina?",
        "Como devo guardar Exemplamina?", "Como devo usar Exemplamina?",
    ]
    assert records[2].answer == "Conservar em temperatura ambiente (entre 15 e 30 °C), protegido da luz e da umidade."


def test_pdf_without_text_layer_is_kept_as_a_document_without_sections(tmp_path):
    path = tmp_path / "scan.pdf"
    path.write_bytes(empty_pdf())
    document = read_pdf_leaflet(path, drug="Scanned")
    assert document.sections == []
    records, stats = document_records(document, ChunkingSettings())
    assert len(records) == 1 and records[0].answer is None and stats.documents_without_text == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "file is empty"), (b"GIF89a....", "not a PDF"), (b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog", "not a readable PDF")],
)
def test_unreadable_pdfs_name_the_file(tmp_path, content, message):
    path = tmp_path / "bad.pdf"
    path.write_bytes(content)
    with pytest.raises(SourceFormatError, match=message) as caught:
        read_pdf_leaflet(path)
    assert caught.value.path == str(path)


def test_pdfs_in_data_files_become_documents(tmp_path):
    (tmp_path / "a.pdf").write_bytes(make_pdf(ENGLISH_LEAFLET))
    (tmp_path / "b.json").write_text('[{"question": "What is aspirin used for?", "answer": "Pain and fever."}]')
    result = ingest_sources(DataSettings(include_sample_corpus=False, files=[SourceFile(path=tmp_path)]))
    assert len(result.records) == 1
    assert [d.title for d in result.documents.documents] == ["Examplamine 10 mg tablets"]
