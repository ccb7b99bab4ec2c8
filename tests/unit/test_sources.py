"""Reading question/answer records from local files (drugslm_core.data.sources)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from drugslm_core.config import DataSettings, FieldMap, SourceFile
from drugslm_core.data.ingest import ingest_sources
from drugslm_core.data.sources import (
    SourceFormatError,
    detect_field,
    expand_sources,
    read_source_file,
)

Q1, A1 = "What is aspirin used for?", "Aspirin relieves mild pain, fever and inflammation."
Q2, A2 = "Who should not take ibuprofen?", "People with active stomach ulcers should avoid ibuprofen."


def read(path: Path, **kwargs) -> list:
    return read_source_file(SourceFile(path=path, **kwargs))


def write_json(path: Path, document) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    return path


MEDQUAD_XML = """<?xml version="1.0" encoding="UTF-8"?>
<Document id="0000042" source="NIDDK" url="http://www.niddk.nih.gov/health-information/example">
<Focus>Acromegaly</Focus>
<FocusAnnotations>
\t<UMLS>
\t\t<CUIs>
\t\t\t<CUI>C0001206</CUI>
\t\t</CUIs>
\t\t<SemanticTypes>
\t\t\t<SemanticType>T047</SemanticType>
\t\t</SemanticTypes>
\t\t<SemanticGroup>Disorders</SemanticGroup>
\t</UMLS>
</FocusAnnotations>
<QAPairs>
\t<QAPair pid="1">
\t\t\t<Question qid="0000042-1" qtype="information">What is (are) Acromegaly ?</Question>
\t\t\t<Answer>Acromegaly is a hormonal disorder that results from too much growth hormone (GH) in the body.
                
It is most often diagnosed in middle-aged adults.</Answer>
\t</QAPair>
\t<QAPair pid="2">
\t\t\t<Question qid="0000042-2" qtype="symptoms">What are the symptoms of Acromegaly ?</Question>
\t\t\t<Answer>The name acromegaly comes from the Greek words for &quot;extremities&quot; and &quot;enlargement&quot;.</Answer>
\t</QAPair>
\t<QAPair pid="3">
\t\t\t<Question qid="0000042-3" qtype="treatment">What are the treatments for Acromegaly ?</Question>
\t\t\t<Answer></Answer>
\t</QAPair>
</QAPairs>
</Document>
"""


# --- every input format -------------------------------------------------------------


def test_json_list(tmp_path):
    path = write_json(tmp_path / "list.json", [{"question": Q1, "answer": A1}, {"question": Q2, "answer": A2}])
    records = read(path)
    assert [(r.question, r.answer) for r in records] == [(Q1, A1), (Q2, A2)]
    assert [r.locator for r in records] == ["record 0", "record 1"]
    assert all(r.source == str(path) for r in records)
    # no id or focus field: id from the file path (relative to the configured source) + locator, focus from the stem
    assert [r.id for r in records] == ["list.json:record 0", "list.json:record 1"]
    assert {r.focus for r in records} == {"list"}


def test_json_dict_with_data_list(tmp_path):
    path = write_json(
        tmp_path / "wrapped.json",
        {"version": 2, "data": [{"id": "a", "question": Q1, "answer": A1}, {"id": "b", "question": Q2, "answer": A2}]},
    )
    records = read(path)
    assert [r.id for r in records] == ["a", "b"]
    assert [r.answer for r in records] == [A1, A2]


def test_json_dict_keyed_by_id(tmp_path):
    path = write_json(
        tmp_path / "keyed.json",
        {"r1": {"question": Q1, "answer": A1}, "r2": {"question": Q2, "answer": A2, "id": "own-id"}},
    )
    records = read(path)
    assert [r.id for r in records] == ["r1", "own-id"]  # the record's own id wins over the key
    assert [r.locator for r in records] == ["key 'r1'", "key 'r2'"]
    assert [r.question for r in records] == [Q1, Q2]


def test_single_json_object(tmp_path):
    path = write_json(tmp_path / "one.json", {"question": Q1, "answer": A1, "drug": "Aspirin"})
    records = read(path)
    assert len(records) == 1
    assert (records[0].question, records[0].answer, records[0].focus) == (Q1, A1, "Aspirin")
    assert records[0].locator == "record 0"


def test_single_json_object_with_nested_list_of_objects(tmp_path):
    path = write_json(
        tmp_path / "one.json",
        {"question": Q1, "answer": A1, "references": [{"url": "https://example.org/leaflet"}]},
    )
    records = read(path)
    assert [(r.question, r.answer) for r in records] == [(Q1, A1)]


def test_jsonl_skips_blank_lines_and_numbers_lines(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text(
        json.dumps({"question": Q1, "answer": A1}) + "\n\n   \n" + json.dumps({"question": Q2, "answer": A2}) + "\n",
        encoding="utf-8",
    )
    records = read(path)
    assert [r.question for r in records] == [Q1, Q2]
    assert [r.locator for r in records] == ["line 1", "line 4"]


def test_ndjson_suffix_is_jsonl(tmp_path):
    path = tmp_path / "pairs.ndjson"
    path.write_text(json.dumps({"question": Q1, "answer": A1}) + "\n", encoding="utf-8")
    assert [r.answer for r in read(path)] == [A1]


def test_jsonl_line_with_unicode_line_separator_in_string(tmp_path):
    path = tmp_path / "sep.jsonl"
    answer = "First paragraph.\u2028Second paragraph."
    path.write_text(json.dumps({"question": Q1, "answer": answer}, ensure_ascii=False) + "\n", encoding="utf-8")
    records = read(path)
    assert [r.answer for r in records] == [answer]


def test_csv(tmp_path):
    path = write_csv(
        tmp_path / "table.csv",
        [["id", "drug", "question", "answer"], ["c1", "Aspirin", Q1, A1], ["c2", "Ibuprofen", Q2, A2]],
    )
    records = read(path)
    assert [(r.id, r.focus, r.question, r.answer) for r in records] == [
        ("c1", "Aspirin", Q1, A1),
        ("c2", "Ibuprofen", Q2, A2),
    ]
    assert [r.locator for r in records] == ["row 2", "row 3"]  # header is row 1


def test_csv_with_utf8_bom(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffquestion,answer\n".encode() + f'"{Q1}","{A1}"\n'.encode())
    records = read(path)
    assert [(r.question, r.answer) for r in records] == [(Q1, A1)]


def test_csv_multiline_quoted_answer_keeps_newlines(tmp_path):
    answer = "Take with food.\n\nDo not crush the tablet."
    path = write_csv(tmp_path / "multiline.csv", [["question", "answer"], [Q1, answer], [Q2, A2]])
    records = read(path)
    assert [r.answer for r in records] == [answer, A2]


def test_medquad_xml(tmp_path):
    path = tmp_path / "0000042.xml"
    path.write_text(MEDQUAD_XML, encoding="utf-8")
    records = read(path)
    assert len(records) == 3
    first, second, empty = records
    assert first.id == "NIDDK:0000042-1"
    assert first.question == "What is (are) Acromegaly ?"
    assert first.answer.startswith("Acromegaly is a hormonal disorder")
    assert first.answer.endswith("middle-aged adults.")
    assert first.focus == "Acromegaly"
    assert first.section == "information"
    assert first.locator == "QAPair qid=0000042-1"
    assert second.answer == 'The name acromegaly comes from the Greek words for "extremities" and "enlargement".'
    assert second.section == "symptoms"
    # an empty <Answer></Answer> is kept (the quality gate quarantines it), not dropped
    assert empty.id == "NIDDK:0000042-3"
    assert empty.question == "What are the treatments for Acromegaly ?"
    assert not empty.answer


def test_medquad_xml_missing_answer_element_is_none_and_empty_answer_is_blank(tmp_path):
    xml = (
        '<Document id="7" source="CDC"><Focus>Flu</Focus><QAPairs>'
        '<QAPair pid="1"><Question qid="7-1" qtype="prevention">How to prevent flu ?</Question></QAPair>'
        '<QAPair pid="2"><Question qid="7-2" qtype="symptoms">What are flu symptoms ?</Question><Answer>  </Answer></QAPair>'
        "</QAPairs></Document>"
    )
    path = tmp_path / "0000007.xml"
    path.write_text(xml, encoding="utf-8")
    missing, blank = read(path)
    assert missing.answer is None
    assert blank.answer == ""


def test_medquad_xml_without_source_uses_folder_name(tmp_path):
    folder = tmp_path / "5_NIDDK_QA"
    folder.mkdir()
    path = folder / "0000042.xml"
    path.write_text(MEDQUAD_XML.replace(' source="NIDDK"', ""), encoding="utf-8")
    assert read(path)[0].id == "5_NIDDK_QA:0000042-1"


def test_explicit_format_overrides_suffix(tmp_path):
    path = tmp_path / "export.txt"
    path.write_text(json.dumps({"question": Q1, "answer": A1}) + "\n", encoding="utf-8")
    assert [r.answer for r in read(path, format="jsonl")] == [A1]


# --- field detection ----------------------------------------------------------------


@pytest.mark.parametrize("question_key", ["question", "instruction", "prompt", "query", "input"])
@pytest.mark.parametrize("answer_key", ["answer", "output", "response", "completion"])
def test_question_and_answer_keys_detected(tmp_path, question_key, answer_key):
    path = write_json(tmp_path / "d.json", [{question_key: Q1, answer_key: A1}])
    [record] = read(path)
    assert (record.question, record.answer) == (Q1, A1)


@pytest.mark.parametrize("id_key", ["id", "qid"])
@pytest.mark.parametrize("focus_key", ["focus", "drug", "title"])
def test_id_and_focus_keys_detected(tmp_path, id_key, focus_key):
    path = write_json(tmp_path / "d.json", [{id_key: "x-1", focus_key: "Warfarin", "question": Q1, "answer": A1}])
    [record] = read(path)
    assert (record.id, record.focus) == ("x-1", "Warfarin")


def test_detection_ignores_case_spaces_and_dashes(tmp_path):
    path = write_csv(
        tmp_path / "sheet.csv",
        [["Question ", " ANSWER", "Drug Name", "Record-ID"], [Q1, A1, "Metformin", "m-7"]],
    )
    [record] = read(path)
    assert (record.question, record.answer, record.focus, record.id) == (Q1, A1, "Metformin", "m-7")


def test_detect_field_prefers_earlier_candidate():
    # alpaca style: "instruction" is the question, not "input"
    assert detect_field(["input", "instruction", "output"], ("question", "instruction", "input")) == "instruction"
    assert detect_field(["Drug_Name"], ("drug", "drug_name")) == "Drug_Name"
    assert detect_field(["foo", "bar"], ("question",)) is None


def test_numeric_id_becomes_text_and_non_string_answer_is_rejected_as_wrong_type(tmp_path):
    path = write_json(tmp_path / "d.json", [{"id": 17, "question": Q1, "answer": 42}])
    [record] = read(path)
    assert (record.id, record.answer) == ("17", "42")  # kept visible for the quarantine view
    assert record.rejected == "wrong_type: field 'answer' holds a int, not text"


def test_explicit_field_map(tmp_path):
    path = write_json(
        tmp_path / "custom.json",
        [{"q_text": Q1, "a_text": A1, "question": "decoy question", "answer": "decoy answer"}],
    )
    [record] = read(path, fields=FieldMap(question="q_text", answer="a_text"))
    assert (record.question, record.answer) == (Q1, A1)


def test_explicit_field_map_for_unrecognised_keys(tmp_path):
    path = write_csv(tmp_path / "custom.csv", [["ask", "reply", "key", "medicine_x"], [Q1, A1, "k1", "Aspirin"]])
    [record] = read(path, fields=FieldMap(question="ask", answer="reply", id="key", focus="medicine_x"))
    assert (record.id, record.question, record.answer, record.focus) == ("k1", Q1, A1, "Aspirin")


# --- missing values are kept --------------------------------------------------------


def test_json_record_missing_answer_is_returned_with_none(tmp_path):
    path = write_json(
        tmp_path / "d.json",
        [{"question": Q1, "answer": A1}, {"question": Q2}, {"question": "What about x?", "answer": None}],
    )
    records = read(path)
    assert len(records) == 3
    assert [r.answer for r in records] == [A1, None, None]
    assert records[1].question == Q2


def test_csv_short_row_is_rejected_as_ragged_with_its_row_number(tmp_path):
    path = tmp_path / "short.csv"
    path.write_text(f"question,answer\n{Q2}\n", encoding="utf-8")
    [record] = read(path)
    assert record.rejected == "ragged_row: row 2 has 1 fields, the header has 2"
    assert record.raw == f"{Q2}\n" and record.locator == "row 2"


# --- errors -------------------------------------------------------------------------


def test_truncated_json_names_file_line_and_column(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('[{"question": "q", "answer": "a"},\n {"question": ', encoding="utf-8")
    with pytest.raises(SourceFormatError) as caught:
        read(path)
    message = str(caught.value)
    assert str(path) in message
    assert "invalid JSON" in message
    assert "line 2" in message
    assert "column" in message
    assert caught.value.path == str(path)


def test_jsonl_bad_line_named(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(
        json.dumps({"question": Q1, "answer": A1}) + "\n\n" + '{"question": "oops", \n', encoding="utf-8"
    )
    good, bad = read(path)
    assert good.rejected is None and bad.locator == "line 3"
    assert bad.rejected.startswith("unparsable_row: invalid JSON (")
    assert bad.raw == '{"question": "oops", \n'


def test_jsonl_non_object_line(tmp_path):
    path = tmp_path / "list.jsonl"
    path.write_text(json.dumps({"question": Q1, "answer": A1}) + "\n[1, 2]\n", encoding="utf-8")
    good, bad = read(path)
    assert (bad.locator, bad.rejected, bad.raw) == ("line 2", "wrong_type: line 2 is a list, not an object", "[1, 2]\n")


@pytest.mark.parametrize("missing", ["question", "answer"])
def test_missing_column_names_the_field(tmp_path, missing):
    present = {"question": Q1, "answer": A1}
    del present[missing]
    path = write_csv(tmp_path / "cols.csv", [list(present) + ["notes"], list(present.values()) + ["x"]])
    with pytest.raises(SourceFormatError) as caught:
        read(path)
    assert caught.value.field == missing
    assert f"field {missing!r}" in str(caught.value)
    assert f"fields.{missing}" in str(caught.value)


@pytest.mark.parametrize("content", ["", "   \n\n"])
def test_empty_file(tmp_path, content):
    path = tmp_path / "empty.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SourceFormatError, match="file is empty"):
        read(path)


def test_empty_json_list_has_no_records(tmp_path):
    path = write_json(tmp_path / "none.json", [])
    with pytest.raises(SourceFormatError, match="no records in file"):
        read(path)


def test_csv_header_only_has_no_records(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("question,answer\n", encoding="utf-8")
    with pytest.raises(SourceFormatError, match="no records in file"):
        read(path)


def test_binary_file(tmp_path):
    path = tmp_path / "blob.json"
    path.write_bytes(b'[{"question": "\x00\x01\x02"}]')
    with pytest.raises(SourceFormatError, match="binary"):
        read(path)


def test_latin1_bytes(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("question,answer\nWhat is paracetamol?,Fièvre et douleur\n".encode("latin-1"))
    [record] = read(path)
    assert record.answer == "Fièvre et douleur"  # detected (cp1252, a superset of latin-1's letters)


def test_configured_encoding_wins_and_a_wrong_one_is_named(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("question,answer\nQuestão?,Ação\n".encode("latin-1"))
    assert read(path, encoding="latin-1")[0].answer == "Ação"
    with pytest.raises(SourceFormatError, match="not valid utf-8") as caught:
        read(path, encoding="utf-8")
    assert caught.value.record == "line 2" and str(path) in str(caught.value)


def test_unknown_suffix(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("question,answer\n", encoding="utf-8")
    with pytest.raises(SourceFormatError, match=r"unknown file type '\.txt'"):
        read(path)


def test_file_not_found(tmp_path):
    with pytest.raises(SourceFormatError, match="file not found"):
        read(tmp_path / "absent.json")


def test_json_list_of_non_objects(tmp_path):
    path = write_json(tmp_path / "ints.json", [{"question": Q1, "answer": A1}, 3])
    good, bad = read(path)
    assert (bad.locator, bad.rejected, bad.raw) == ("record 1", "wrong_type: record 1 is a int, not an object", "3")


def test_json_scalar_document(tmp_path):
    path = write_json(tmp_path / "scalar.json", "just a string")
    with pytest.raises(SourceFormatError, match="expected a JSON list or object of records, got str"):
        read(path)


def test_invalid_xml(tmp_path):
    path = tmp_path / "broken.xml"
    path.write_text(MEDQUAD_XML[: len(MEDQUAD_XML) // 2], encoding="utf-8")
    with pytest.raises(SourceFormatError, match="invalid XML"):
        read(path)


def test_xml_with_other_root(tmp_path):
    path = tmp_path / "other.xml"
    path.write_text("<Root><QAPair/></Root>", encoding="utf-8")
    with pytest.raises(SourceFormatError, match=r"expected a MedQuAD <Document> root \(or <DiseaseFile>, <doc>\), got <Root>"):
        read(path)


# --- directories and merging --------------------------------------------------------


def make_tree(root: Path) -> dict[str, int]:
    """A folder with supported files (name -> record count) plus ignored ones."""
    (root / "sub").mkdir(parents=True)
    write_json(root / "b.json", [{"question": Q1, "answer": A1}, {"question": Q2, "answer": A2}])
    (root / "a.jsonl").write_text(json.dumps({"question": Q1, "answer": A1}) + "\n", encoding="utf-8")
    write_csv(root / "sub" / "c.csv", [["question", "answer"], [Q1, A1], [Q2, A2], [Q1, A2]])
    (root / "sub" / "0000042.xml").write_text(MEDQUAD_XML, encoding="utf-8")
    (root / "README.txt").write_text("not data", encoding="utf-8")
    (root / ".DS_Store").write_bytes(b"\x00\x00")
    return {"a.jsonl": 1, "b.json": 2, "sub/0000042.xml": 3, "sub/c.csv": 3}


def test_expand_sources_directory_yields_supported_files_sorted(tmp_path):
    expected = make_tree(tmp_path)
    expanded = list(expand_sources([SourceFile(path=tmp_path, fields=FieldMap(focus="drug"))]))
    assert [str(s.path.relative_to(tmp_path)) for s in expanded] == sorted(expected)
    assert all(s.fields.focus == "drug" for s in expanded)  # per-file settings are carried over


def test_expand_sources_file_passes_through(tmp_path):
    path = write_json(tmp_path / "x.json", [])
    assert [s.path for s in expand_sources([SourceFile(path=path)])] == [path]


def test_expand_sources_explicit_format_takes_every_file(tmp_path):
    make_tree(tmp_path)
    expanded = list(expand_sources([SourceFile(path=tmp_path / "sub", format="csv")]))
    assert [s.path.name for s in expanded] == ["0000042.xml", "c.csv"]


def test_ingest_merges_files_without_losing_records(tmp_path):
    counts = make_tree(tmp_path)
    extra = write_json(tmp_path.parent / f"{tmp_path.name}-extra.json", [{"question": Q2, "answer": A2}])
    batch = ingest_sources(
        DataSettings(include_sample_corpus=False, files=[SourceFile(path=tmp_path), SourceFile(path=extra)])
    ).records
    assert len(batch) == sum(counts.values()) + 1
    by_source = batch.counts_by_source()
    assert {str(Path(k).relative_to(tmp_path)): v for k, v in by_source.items() if k != str(extra)} == counts
    assert by_source[str(extra)] == 1


def test_ingest_without_any_source_fails():
    with pytest.raises(ValueError, match="no records ingested"):
        ingest_sources(DataSettings(include_sample_corpus=False, files=[]))


# --- the older MedQuAD schemas (seen in 6_NINDS_QA and 9_CDC_QA) -------------------------------------


def test_medquad_lowercase_doc_schema(tmp_path):
    xml = (
        '<doc docid="0000007" corpus="NINDS" url="http://example.org"><doctitle-focus>Holmes-Adie</doctitle-focus>'
        '<qaPairs><pair pid="1"><question qid="0000007-1" qtype="information">what is holmes-adie syndrome ?</question>'
        "<answer>A neurological disorder affecting the pupil.</answer></pair>"
        '<pair pid="2"><question qtype="treatment">how is it treated ?</question><answer></answer></pair></qaPairs></doc>'
    )
    path = tmp_path / "0000007.xml"
    path.write_text(xml, encoding="utf-8")
    first, second = read(path)
    assert (first.id, first.focus, first.section, first.locator) == ("NINDS:0000007-1", "Holmes-Adie", "information", "pair qid=0000007-1")
    assert first.answer == "A neurological disorder affecting the pupil."
    assert (second.id, second.answer) == ("NINDS:0000007:1", "")


def test_medquad_disease_file_schema(tmp_path):
    xml = (
        '<DiseaseFile fid="0000397" source="CDC"><Focus>Taeniasis</Focus><QAPairs><QAPair pid="1">'
        '<Question qid="0000397-1" qtype="information">What is taeniasis ?</Question><Answer>A tapeworm infection.</Answer>'
        "</QAPair></QAPairs></DiseaseFile>"
    )
    path = tmp_path / "0000397.xml"
    path.write_text(xml, encoding="utf-8")
    [record] = read(path)
    assert (record.id, record.focus, record.answer) == ("CDC:0000397-1", "Taeniasis", "A tapeworm infection.")
