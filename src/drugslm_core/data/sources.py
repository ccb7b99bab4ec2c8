"""Read question/answer records from local files: JSON, JSONL, CSV, MedQuAD XML.

Field names are detected from common spellings (question/instruction/prompt…,
answer/output/response…) and can be overridden per file. A file that cannot be
read raises :class:`SourceFormatError` naming the file, the record and the
field; a record whose question or answer is missing is still returned (with
``None``) so that the quality gate quarantines it with a reason.
"""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from drugslm_core.config import FieldMap, SourceFile
from drugslm_core.data.records import QARecord

QUESTION_KEYS = ("question", "instruction", "prompt", "query", "input", "q", "user")
ANSWER_KEYS = ("answer", "output", "response", "completion", "target", "a", "assistant")
ID_KEYS = ("id", "qid", "uid", "record_id", "question_id")
FOCUS_KEYS = ("focus", "drug", "drug_name", "medicine", "topic", "title", "category", "subject")
RECORD_LIST_KEYS = ("data", "records", "items", "examples", "questions", "rows")

SUFFIX_FORMATS = {
    ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".xml": "xml", ".pdf": "pdf",
}


class SourceFormatError(ValueError):
    """A source file (or one record in it) cannot be read."""

    def __init__(self, path: Path | str, message: str, record: str | None = None, field: str | None = None):
        where = f"{path}"
        if record is not None:
            where += f", {record}"
        if field is not None:
            where += f", field {field!r}"
        super().__init__(f"{where}: {message}")
        self.path = str(path)
        self.record = record
        self.field = field


def _normalise(key: str) -> str:
    return key.strip().lower().replace("-", "_").replace(" ", "_")


def detect_field(keys: Iterable[str], candidates: tuple[str, ...]) -> str | None:
    """The first key (in candidate order) whose normalised spelling is a candidate."""
    by_normalised = {}
    for key in keys:
        by_normalised.setdefault(_normalise(key), key)
    for candidate in candidates:
        if candidate in by_normalised:
            return by_normalised[candidate]
    return None


def resolve_fields(path: Path, rows: list[Mapping[str, Any]], overrides: FieldMap) -> FieldMap:
    """Work out which keys hold question, answer, id and focus in these rows."""
    keys: list[str] = []
    for row in rows[:50]:
        keys.extend(k for k in row if k not in keys)
    resolved = FieldMap(
        question=overrides.question or detect_field(keys, QUESTION_KEYS),
        answer=overrides.answer or detect_field(keys, ANSWER_KEYS),
        id=overrides.id or detect_field(keys, ID_KEYS),
        focus=overrides.focus or detect_field(keys, FOCUS_KEYS),
    )
    for role in ("question", "answer"):
        if getattr(resolved, role) is None:
            raise SourceFormatError(
                path,
                f"no {role} field found among keys {keys}; name it with "
                f"data.files[].fields.{role} in the config",
                field=role,
            )
    return resolved


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def _records_from_rows(
    path: Path, rows: list[tuple[str, Mapping[str, Any]]], overrides: FieldMap
) -> list[QARecord]:
    fields = resolve_fields(path, [row for _, row in rows], overrides)
    records = []
    for locator, row in rows:
        focus = _text(row.get(fields.focus)) if fields.focus else None
        record_id = _text(row.get(fields.id)) if fields.id else None
        records.append(
            QARecord(
                id=record_id if record_id is not None else f"{path.stem}:{locator}",
                question=_text(row.get(fields.question)),
                answer=_text(row.get(fields.answer)),
                focus=(focus or path.stem).strip(),
                source=str(path),
                locator=locator,
            )
        )
    return records


def _load_json_text(path: Path, text: str, record: str | None = None) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise SourceFormatError(
            path, f"invalid JSON ({error.msg} at line {error.lineno}, column {error.colno})", record
        ) from error


def _json_rows(path: Path, document: Any) -> list[tuple[str, Mapping[str, Any]]]:
    if isinstance(document, dict) and detect_field(document, QUESTION_KEYS) is not None:
        document = [document]  # one record (its own list-valued fields are not a container)
    if isinstance(document, dict):
        list_key = next(
            (k for k in RECORD_LIST_KEYS if isinstance(document.get(k), list)),
            next((k for k, v in document.items() if isinstance(v, list) and v and isinstance(v[0], dict)), None),
        )
        if list_key is not None:
            document = document[list_key]
        elif document and all(isinstance(v, dict) for v in document.values()):
            # {"<id>": {record}, ...}: the key is the id unless the record has one.
            return [(f"key {k!r}", {"id": k, **v}) for k, v in document.items()]
        else:
            document = [document]
    if not isinstance(document, list):
        raise SourceFormatError(path, f"expected a JSON list or object of records, got {type(document).__name__}")
    rows = []
    for index, item in enumerate(document):
        if not isinstance(item, dict):
            raise SourceFormatError(path, f"expected an object, got {type(item).__name__}", f"record {index}")
        rows.append((f"record {index}", item))
    return rows


def _jsonl_rows(path: Path, text: str) -> list[tuple[str, Mapping[str, Any]]]:
    rows = []
    # split("\n"), not splitlines(): U+2028/U+2029/U+0085 may stand unescaped inside JSON strings.
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        item = _load_json_text(path, line, f"line {number}")
        if not isinstance(item, dict):
            raise SourceFormatError(path, f"expected an object, got {type(item).__name__}", f"line {number}")
        rows.append((f"line {number}", item))
    return rows


def _csv_rows(path: Path, text: str) -> list[tuple[str, Mapping[str, Any]]]:
    # newline="" keeps line breaks inside quoted fields (multi-line answers from spreadsheets).
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames:
        raise SourceFormatError(path, "CSV has no header row")
    # Row numbers count the header as row 1, like a spreadsheet.
    return [(f"row {index}", row) for index, row in enumerate(reader, start=2)]


def _element_text(element: ET.Element | None) -> str | None:
    """``None`` when the element is absent, its stripped text (possibly empty) otherwise."""
    if element is None:
        return None
    return (element.text or "").strip()


# MedQuAD files come in three schemas (all seen in the released collection):
# root tag -> (id attribute, collection attribute, focus element, pair element, question, answer)
MEDQUAD_SCHEMAS: dict[str, tuple[str, str, str, str, str, str]] = {
    "Document": ("id", "source", "Focus", "QAPair", "Question", "Answer"),
    "DiseaseFile": ("fid", "source", "Focus", "QAPair", "Question", "Answer"),
    "doc": ("docid", "corpus", "doctitle-focus", "pair", "question", "answer"),
}


def read_medquad_xml(path: Path, text: str) -> list[QARecord]:
    """MedQuAD's ``<Document><Focus/><QAPairs><QAPair><Question qid qtype/><Answer/>`` and its two
    older variants (``<DiseaseFile>``, and ``<doc><doctitle-focus/><qaPairs><pair><question/><answer/>``)."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as error:
        raise SourceFormatError(path, f"invalid XML ({error})") from error
    if root.tag not in MEDQUAD_SCHEMAS:
        raise SourceFormatError(
            path, f"expected a MedQuAD <Document> root (or <DiseaseFile>, <doc>), got <{root.tag}>"
        )
    id_attr, collection_attr, focus_tag, pair_tag, question_tag, answer_tag = MEDQUAD_SCHEMAS[root.tag]
    collection = root.get(collection_attr) or path.parent.name
    focus = (root.findtext(focus_tag) or path.stem).strip()
    records = []
    for index, pair in enumerate(root.iter(pair_tag)):
        question = pair.find(question_tag)
        qid = question.get("qid") if question is not None else None
        locator = f"{pair_tag} qid={qid}" if qid else f"{pair_tag} {index}"
        records.append(
            QARecord(
                id=f"{collection}:{qid}" if qid else f"{collection}:{root.get(id_attr)}:{index}",
                question=_element_text(question),
                answer=_element_text(pair.find(answer_tag)),
                focus=focus,
                source=str(path),
                locator=locator,
                section=question.get("qtype") if question is not None else None,
            )
        )
    return records


def _decode(path: Path) -> str:
    data = path.read_bytes()
    if b"\x00" in data[:4096]:
        raise SourceFormatError(path, "looks like a binary file, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise SourceFormatError(
            path, f"not valid UTF-8 (byte {error.start}, {data[error.start:error.start + 1]!r}); "
            "re-encode the file as UTF-8 (it looks like latin-1/cp1252)", record=f"line {line}",
        ) from error


def detect_format(path: Path) -> str:
    fmt = SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise SourceFormatError(path, f"unknown file type {path.suffix!r}; set data.files[].format")
    return fmt


def read_source_file(source: SourceFile) -> list[QARecord]:
    """Every record in one file (``format: auto`` goes by the suffix)."""
    path = Path(source.path)
    if not path.is_file():
        raise SourceFormatError(path, "file not found")
    fmt = detect_format(path) if source.format == "auto" else source.format
    if fmt == "pdf":
        raise SourceFormatError(path, "a PDF is a document, not records: read it with read_pdf_leaflet")
    text = _decode(path)
    if not text.strip():
        raise SourceFormatError(path, "file is empty")
    if fmt == "xml":
        return read_medquad_xml(path, text)
    if fmt == "json":
        rows = _json_rows(path, _load_json_text(path, text))
    elif fmt == "jsonl":
        rows = _jsonl_rows(path, text)
    else:
        rows = _csv_rows(path, text)
    if not rows:
        raise SourceFormatError(path, "no records in file")
    return _records_from_rows(path, rows, source.fields)


def expand_sources(sources: Iterable[SourceFile]) -> Iterator[SourceFile]:
    """A directory stands for every readable file directly or deeply inside it, sorted."""
    for source in sources:
        path = Path(source.path).expanduser()
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                if source.format != "auto" or child.suffix.lower() in SUFFIX_FORMATS:
                    yield source.model_copy(update={"path": child})
        else:
            yield source.model_copy(update={"path": path})
