"""Cleaning, PII scrubbing, chunking, dedup, questions from documents, and the clean step's accounting."""

from __future__ import annotations

import re

import pytest

from drugslm_core.config import ChunkingSettings, CleaningSettings, DedupSettings
from drugslm_core.data.chunking import chunk_text
from drugslm_core.data.cleaning import compile_patterns, normalize_text, remove_boilerplate, strip_html
from drugslm_core.data.dedup import find_duplicates
from drugslm_core.data.documents import Document, DocumentBatch, DocumentSection
from drugslm_core.data.pii import scrub_pii
from drugslm_core.data.questions import document_records, documents_to_records
from drugslm_core.data.records import QARecord, RecordBatch
from drugslm_core.data.sections import canonical_section, split_sections
from drugslm_core.data.transform import clean_records

ALL_PII = ["email", "phone", "us_ssn", "br_cpf", "br_cnpj"]


def rec(id: str, question: str | None = "What is aspirin used for?", answer: str | None = "Aspirin relieves pain and fever.") -> QARecord:
    return QARecord(id=id, question=question, answer=answer, focus="Aspirin", source="unit", locator=f"record {id}")


# --- normalisation, HTML, boilerplate ------------------------------------------------


def test_normalize_text_unicode_and_whitespace():
    text = "Take\u00a0two\u200b tablets\t\tdaily.\r\n\r\n\r\n\r\nStore  below 25\u2009°C.\u2028Keep dry.\x07"
    assert normalize_text(text) == "Take two tablets daily.\n\nStore below 25 °C.\nKeep dry."


def test_normalize_nfkc_folds_compatibility_characters_only_when_asked():
    assert normalize_text("ﬁlm-coated ５ mg", "NFKC") == "film-coated 5 mg"
    assert normalize_text("ﬁlm 1½ 10⁹") == "ﬁlm 1½ 10⁹"  # NFC, the default, keeps them


def test_strip_html_keeps_visible_text_and_structure():
    html = "<p>Take <b>one</b> tablet &amp; water.</p><script>alert(1)</script><ul><li>a</li><li>b</li></ul><!-- c -->x<br>y"
    assert normalize_text(strip_html(html)) == "Take one tablet & water.\na\nb\n\nx\ny"  # a list ends a paragraph


def test_strip_html_leaves_plain_text_and_comparisons_alone():
    assert strip_html("CrCl < 30 mL/min and age > 65") == "CrCl < 30 mL/min and age > 65"
    assert strip_html("Salt &amp; pepper") == "Salt & pepper"


def test_remove_boilerplate_counts_lines():
    patterns = compile_patterns(CleaningSettings().boilerplate_patterns)
    text = "Useful line.\nPage 3 of 12\nClick here to subscribe\n© 2024 Example Inc.\nAnother useful line."
    cleaned, removed = remove_boilerplate(text, patterns)
    assert cleaned == "Useful line.\nAnother useful line."
    assert removed == 3


def test_invalid_boilerplate_pattern_is_named():
    with pytest.raises(ValueError, match=r"boilerplate_patterns\[1\]"):
        compile_patterns(["ok", "(unclosed"])


# --- PII ------------------------------------------------------------------------------


def test_scrub_pii_counts_each_kind():
    text = (
        "Mail ana.silva@example.com.br or call +55 11 98765-4321 or (555) 123-4567; SSN 123-45-6789, "
        "CPF 123.456.789-09, CNPJ 12.345.678/0001-95."
    )
    scrubbed, counts = scrub_pii(text, ALL_PII)
    assert scrubbed == "Mail [EMAIL] or call [PHONE] or [PHONE]; SSN [ID], CPF [ID], CNPJ [ID]."
    assert counts == {"email": 1, "phone": 2, "us_ssn": 1, "br_cpf": 1, "br_cnpj": 1}


def test_scrub_pii_leaves_doses_dates_and_allowed_numbers():
    text = "Take 500 mg every 8 hours (max 4000 mg/day) since 2019-01-05; poison control 1-800-222-1222."
    scrubbed, counts = scrub_pii(text, ALL_PII, allow=["1-800-222-1222"])
    assert scrubbed == text
    assert not counts
    assert scrub_pii("call 1-800-222-1222", ["phone"])[0] == "call [PHONE]"


# --- chunking ---------------------------------------------------------------------------

LONG = " ".join(
    f"Sentence {i} explains one more thing about the medicine and its use in adults." for i in range(40)
) + "\n\n" + "Final paragraph with advice."


def words(text: str) -> list[str]:
    return text.split()


@pytest.mark.parametrize("strategy", ["fixed", "sentence", "recursive"])
@pytest.mark.parametrize("size", [60, 200, 700])
def test_chunks_fit_and_keep_every_word_in_order(strategy, size):
    chunks = chunk_text(LONG, strategy, size)
    assert len(chunks) > 1
    assert all(0 < len(c) <= size for c in chunks)
    assert [w for c in chunks for w in words(c)] == words(LONG)


def test_sentence_chunks_end_at_sentences():
    chunks = chunk_text(LONG, "sentence", 200)
    assert all(c.endswith(".") for c in chunks)


def test_recursive_prefers_paragraphs():
    text = "A" * 50 + " first.\n\n" + "B" * 50 + " second."
    assert chunk_text(text, "recursive", 70) == ["A" * 50 + " first.", "B" * 50 + " second."]


def test_overlap_repeats_the_previous_tail_within_the_limit():
    chunks = chunk_text(LONG, "sentence", 200, overlap_chars=40)
    assert all(len(c) <= 200 for c in chunks)
    plain = chunk_text(LONG, "sentence", 160)  # the same cut points, without overlap
    assert len(plain) == len(chunks)
    for previous, current, own in zip(plain, chunks[1:], plain[1:]):
        assert current.endswith(own)
        repeated = current[: len(current) - len(own)].strip()
        assert repeated and len(repeated) <= 40
        assert previous.endswith(repeated)


def test_short_text_is_one_chunk_and_bad_settings_fail():
    assert chunk_text("  short  ", "fixed", 100) == ["short"]
    assert chunk_text("   ", "fixed", 100) == []
    with pytest.raises(ValueError, match="strategy"):
        chunk_text(LONG, "paragraphs", 100)
    with pytest.raises(ValueError, match="overlap_chars"):
        chunk_text(LONG, "fixed", 100, overlap_chars=60)


# --- sections and questions --------------------------------------------------------------


@pytest.mark.parametrize(
    ("heading", "expected"),
    [
        ("INDICATIONS AND USAGE", "indications"), ("2 DOSAGE AND ADMINISTRATION", "dosage"),
        ("Side effects", "adverse_reactions"), ("drug_interactions", "interactions"),
        ("6. COMO DEVO USAR ESTE MEDICAMENTO?", "dosage"),
        ("5. ONDE, COMO E POR QUANTO TEMPO POSSO GUARDAR ESTE MEDICAMENTO?", "storage"),
        ("Quando não devo usar este medicamento?", "contraindications"), ("Random heading", None),
    ],
)
def test_canonical_section(heading, expected):
    assert canonical_section(heading) == expected


def test_split_sections_reflows_and_names_unknown_headings():
    text = "Examplamine 10 mg\nINDICATIONS\nUsed for high blood pres-\nsure in adults.\n\nSecond paragraph.\nDOSAGE FORMS\nTablets.\n"
    sections = split_sections(text)
    assert [(s.name, s.heading) for s in sections] == [
        ("overview", "overview"), ("indications", "INDICATIONS"), ("dosage_forms", "DOSAGE FORMS"),
    ]
    assert sections[1].text == "Used for high blood pressure in adults.\n\nSecond paragraph."


def make_document(sections: list[tuple[str, str]], language: str = "en") -> Document:
    return Document(
        id="doc:1", title="Examplamine", source="unit", locator="doc 1", kind="leaflet", language=language,
        sections=[DocumentSection(name=n, heading=n.upper(), text=t) for n, t in sections],
    )


def test_document_records_one_question_per_section_medquad_style():
    document = make_document(
        [("indications", "Treats hypertension."), ("adverse_reactions", "Dizziness."), ("storage", "Keep dry."),
         ("dosage_forms", "Tablets."), ("storage", "Below 25 °C.")]
    )
    records, stats = document_records(document, ChunkingSettings())
    assert [r.question for r in records] == [
        "What is Examplamine used for?", "What are the side effects of Examplamine?", "How should I store Examplamine?",
        "What does the Examplamine leaflet say about dosage_forms?", "How should I store Examplamine?",
    ]
    assert [r.id for r in records] == [
        "doc:1:indications", "doc:1:adverse_reactions", "doc:1:storage", "doc:1:dosage_forms", "doc:1:storage#2",
    ]
    assert {r.focus for r in records} == {"Examplamine"}
    assert stats.records == stats.sections == 5


def test_portuguese_questions():
    records, _ = document_records(make_document([("dosage", "Um comprimido ao dia.")], "pt"), ChunkingSettings())
    assert records[0].question == "Como devo usar Examplamine?"


def test_long_section_is_chunked_into_counted_parts():
    document = make_document([("warnings", LONG), ("storage", "Keep dry.")])
    records, stats = document_records(document, ChunkingSettings(strategy="sentence", max_chars=500))
    parts = [r for r in records if r.section == "warnings"]
    assert len(parts) > 1
    assert parts[0].question.endswith(f"(part 1 of {len(parts)})")
    assert stats.chunked_sections == 1
    assert stats.chunks_added == len(parts) - 1
    assert stats.records == len(records) == len(parts) + 1
    assert " ".join(p.answer for p in parts).split() == LONG.split()


def test_document_without_text_becomes_a_record_without_answer():
    records, stats = documents_to_records([make_document([])], ChunkingSettings())
    assert len(records) == 1
    assert records[0].answer is None
    assert "no extractable text" in records[0].locator
    assert stats.documents_without_text == 1


# --- dedup -----------------------------------------------------------------------------

PARAGRAPH = (
    "Metformin lowers blood sugar by reducing glucose production in the liver and improving the response "
    "of the body to insulin. It is taken with meals to reduce stomach upset, usually two or three times a day, "
    "and the dose is increased slowly over several weeks"
)


def test_exact_and_near_duplicates_point_at_the_first_record():
    records = [
        rec("a", answer=PARAGRAPH + "."),
        rec("b", answer="  " + PARAGRAPH.upper() + ". "),  # same text up to case and spacing
        rec("c", answer=PARAGRAPH + " as tolerated."),  # one more clause at the end
        rec("d", answer="Something entirely different about storage and heat."),
        rec("e", answer=None),
        rec("f", answer="   "),
    ]
    found = {(d.index, d.kept_index, d.kind) for d in find_duplicates(records, DedupSettings())}
    assert found == {(1, 0, "exact"), (2, 0, "near")}


def test_dedup_can_be_switched_off():
    records = [rec("a", answer=PARAGRAPH), rec("b", answer=PARAGRAPH), rec("c", answer=PARAGRAPH + " ok")]
    assert [d.kind for d in find_duplicates(records, DedupSettings(near=False))] == ["exact"]
    assert find_duplicates(records, DedupSettings(exact=False, near=False)) == []


# --- the clean step --------------------------------------------------------------------


def test_clean_records_accounts_for_every_record():
    raw = RecordBatch(
        records=[
            rec("a", answer="<p>Aspirin relieves <b>pain</b>.</p>"),
            rec("b", answer="Aspirin relieves pain."),  # exact duplicate of a once cleaned
            rec("c", answer="Write to doctor@example.org.\nPage 1 of 2"),
            rec("d", answer="<script>x()</script>"),  # emptied by cleaning: kept for the gate
            rec("e", answer=None),
        ]
    )
    documents = DocumentBatch(documents=[make_document([("warnings", LONG)])])
    settings = CleaningSettings(chunking=ChunkingSettings(max_chars=400))
    result = clean_records(raw, documents, settings)
    stats = result.stats
    assert stats.records_in == 5 + stats.from_documents.records
    assert stats.from_documents.records > 1
    assert stats.records_out + len(result.duplicates) == stats.records_in
    assert len(result.records) == stats.records_out
    [duplicate] = result.duplicates.items
    assert duplicate.record.id == "b"
    assert duplicate.reasons == ["duplicate_of:a (exact)"]
    assert duplicate.record.answer == "Aspirin relieves pain."  # the original record is quarantined
    by_id = {r.id: r for r in result.records.records}
    assert by_id["a"].answer == "Aspirin relieves pain."
    assert by_id["c"].answer == "Write to [EMAIL]."
    assert by_id["d"].answer == ""
    assert by_id["e"].answer is None
    assert (stats.html_stripped, stats.boilerplate_lines, stats.pii, stats.emptied) == (2, 1, {"email": 1}, 1)
    assert result.duplicates.reason_counts() == {"duplicate_of": 1}


def test_clean_records_leaves_clean_text_unchanged():
    raw = RecordBatch(records=[rec("a"), rec("b", question="Who should not take aspirin?")])
    result = clean_records(raw, DocumentBatch(), CleaningSettings())
    assert result.records == raw
    assert re.fullmatch(r"0", str(result.stats.normalized))
