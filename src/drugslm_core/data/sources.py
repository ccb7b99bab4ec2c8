"""Read question/answer records from local files: JSON, JSONL, CSV/TSV, XLSX, Parquet, MedQuAD XML.

Every reader counts what the file holds (data rows, non-blank lines, QA pair elements, list
items) and turns *each* of them into exactly one record, so that for every file
``held = accepted + quarantined`` downstream. A unit the reader cannot use (a CSV row with an
unbalanced quote or the wrong number of fields, a JSONL line that is not a JSON object, a
question that is a list) still becomes a record, with ``rejected`` set to the reason; the quality
gate quarantines it. Nothing is merged into a neighbour and nothing is dropped.

Field names are detected from common spellings (question/instruction/prompt…,
answer/output/response…) or configured per file (matched ignoring case and surrounding spaces).
A file that cannot be read at all raises :class:`SourceFormatError` naming the file, and the
record and field where there is one. Readers stream (line by line, row by row) except JSON
documents and XML files, which are parsed whole.
"""

from __future__ import annotations

import codecs
import csv
import itertools
import json
import logging
import sys
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from drugslm_core.config import FieldMap, SourceFile
from drugslm_core.data.records import QARecord, SourceCount

logger = logging.getLogger(__name__)

QUESTION_KEYS = ("question", "instruction", "prompt", "query", "input", "q", "user", "pergunta")
ANSWER_KEYS = ("answer", "output", "response", "completion", "target", "a", "assistant", "resposta")
ID_KEYS = ("id", "qid", "uid", "record_id", "question_id")
FOCUS_KEYS = (
    "focus", "drug", "drug_name", "medicine", "topic", "title", "category", "subject", "medicamento", "farmaco",
)
RECORD_LIST_KEYS = ("data", "records", "items", "examples", "questions", "rows")

SUFFIX_FORMATS = {
    ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "tsv", ".xml": "xml",
    ".xlsx": "xlsx", ".parquet": "parquet", ".pdf": "pdf",
}
LITTER_NAMES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini", ".localized"})
"""Files operating systems leave in folders; skipped by name (as are ``._*`` AppleDouble files)."""

SNIFF_BYTES = 64 * 1024
RAW_CHARS = 2_000
"""How much of an unusable row is kept in ``QARecord.raw`` for the quarantine view."""
# Detection for files that are neither UTF-8 nor carry a BOM: charset-normalizer ranks these
# single-byte Windows code pages (what spreadsheet programs export) and a few CJK encodings. The
# ISO-8859/Mac families are left out on purpose: on short Portuguese text they win the ranking
# and turn "ã" into "ă". The chosen encoding is named in the ingest summary; set
# ``data.files[].encoding`` when it is wrong.
DETECT_ENCODINGS = (
    "cp1252", "cp1251", "cp1253", "cp1254", "cp1255", "cp1256", "cp1257", "koi8_r",
    "shift_jis", "gb18030", "euc_kr", "big5",
)


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
    return str(key).strip().lower().replace("-", "_").replace(" ", "_")


def detect_field(keys: Iterable[str], candidates: tuple[str, ...]) -> str | None:
    """The first key (in candidate order) whose normalised spelling is a candidate."""
    by_normalised: dict[str, str] = {}
    for key in keys:
        by_normalised.setdefault(_normalise(key), key)
    for candidate in candidates:
        if candidate in by_normalised:
            return by_normalised[candidate]
    return None


def resolve_fields(path: Path, rows: list[Mapping[str, Any]], overrides: FieldMap) -> FieldMap:
    """Work out which keys hold question, answer, id and focus in these rows.

    A configured name matches a key ignoring case and surrounding spaces; a configured name that
    no key matches is an error naming the file, the field and the keys the file does have."""
    keys: list[str] = []
    for row in rows[:50]:
        keys.extend(k for k in row if k not in keys)
    chosen: dict[str, str | None] = {}
    for role, candidates in (("question", QUESTION_KEYS), ("answer", ANSWER_KEYS), ("id", ID_KEYS), ("focus", FOCUS_KEYS)):
        configured = getattr(overrides, role)
        if configured is not None:
            match = detect_field(keys, (_normalise(configured),))
            if match is None:
                raise SourceFormatError(
                    path, f"configured column {configured!r} (data.files[].fields.{role}) is not in the file; "
                    f"its columns are {keys}", field=role,
                )
            chosen[role] = match
        else:
            chosen[role] = detect_field(keys, candidates)
    for role in ("question", "answer"):
        if chosen[role] is None:
            raise SourceFormatError(
                path,
                f"no {role} field found among keys {keys}; name it with "
                f"data.files[].fields.{role} in the config",
                field=role,
            )
    return FieldMap(**chosen)


# --- one unit of a file, before it becomes a record ------------------------------------------------


@dataclass
class _Unit:
    locator: str
    row: Mapping[str, Any] | None = None
    rejected: str | None = None
    raw: str | None = None


@dataclass
class FileRead:
    """The records of one file and what the file holds (``len(records) == count.held``)."""

    records: list[QARecord]
    count: SourceCount


@dataclass
class _Context:
    path: Path
    relative: str
    """The file's path relative to the configured source (a folder) or its name: generated ids use it."""
    overrides: FieldMap
    notes: list[str] = field(default_factory=list)
    source: str = ""
    """``str(path)``, made once: every record of the file shares the one string."""
    texts: dict[str, str] = field(default_factory=dict)
    """One copy of each repeated focus value (a large file names a few hundred drugs, not a million)."""

    def __post_init__(self) -> None:
        self.source = str(self.path)

    def shared(self, value: str) -> str:
        return self.texts.setdefault(value, value) if len(self.texts) < 100_000 else value


def _scalar_text(value: Any) -> str | None:
    """Ids and focus: numbers become text (``17``, not ``17.0``), containers JSON."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, ensure_ascii=False, default=str)


def _field_text(value: Any, role: str, problems: list[str]) -> str | None:
    """Question/answer: only text is text. Anything else is kept visible (as JSON) and flagged."""
    if value is None or isinstance(value, str):
        return value
    problems.append(f"wrong_type: field {role!r} holds a {type(value).__name__}, not text")
    return _scalar_text(value)


def _records(ctx: _Context, units: Iterable[_Unit]) -> Iterator[QARecord]:
    """Units → records; the field map is resolved from the first 50 units that have a row."""
    units = iter(units)
    head: list[_Unit] = []
    for unit in units:
        head.append(unit)
        if sum(u.row is not None for u in head) >= 50:
            break
    rows = [u.row for u in head if u.row is not None]
    fields = resolve_fields(ctx.path, rows, ctx.overrides) if rows else ctx.overrides
    # Alpaca (instruction / input / output): the input is the actual question; both are kept.
    keys = [k for row in rows for k in row]
    alpaca_input = (
        detect_field(keys, ("input",))
        if fields.question is not None and _normalise(fields.question) == "instruction" else None
    )
    if alpaca_input:
        ctx.notes.append("instruction + input joined into the question")
    for unit in itertools.chain(head, units):  # not (*head, *units): that would hold every row at once
        yield _record(ctx, unit, fields, alpaca_input)


_ALL_FIELDS = set(QARecord.model_fields)


def _new_record(**values: Any) -> QARecord:
    """A record without re-validation and with one fields-set shared by all records.

    The readers already guarantee the types (text or ``None``). Pydantic gives every instance its
    own set of the field names it was given (~700 bytes, more than a typical question); a large
    file holds millions of records, so they share one set holding *all* field names (adding a
    name to it on attribute assignment is then a no-op)."""
    values.setdefault("section", None)
    values.setdefault("rejected", None)
    values.setdefault("raw", None)
    return QARecord.model_construct(_fields_set=_ALL_FIELDS, **values)


def _record(ctx: _Context, unit: _Unit, fields: FieldMap, alpaca_input: str | None) -> QARecord:
    generated_id = f"{ctx.relative}:{unit.locator}"
    if unit.row is None:
        return _new_record(
            id=generated_id, question=None, answer=None, focus=ctx.path.stem, source=ctx.source,
            locator=unit.locator, rejected=unit.rejected, raw=(unit.raw or "")[:RAW_CHARS] or None,
        )
    row = unit.row
    problems: list[str] = [unit.rejected] if unit.rejected else []
    question = _field_text(row.get(fields.question) if fields.question else None, "question", problems)
    answer = _field_text(row.get(fields.answer) if fields.answer else None, "answer", problems)
    if alpaca_input is not None:
        extra = _field_text(row.get(alpaca_input), "input", problems)
        if extra and extra.strip():
            question = f"{question.rstrip()}\n\n{extra.strip()}" if question and question.strip() else extra
    record_id = _scalar_text(row.get(fields.id)) if fields.id else None
    focus = _scalar_text(row.get(fields.focus)) if fields.focus else None
    return _new_record(
        id=record_id if record_id not in (None, "") else generated_id,
        question=question,
        answer=answer,
        focus=ctx.shared((focus or ctx.path.stem).strip() or ctx.path.stem),
        source=ctx.source,
        locator=unit.locator,
        rejected="; ".join(problems) or None,
    )


# --- text files: encoding -----------------------------------------------------------------------


def _detect_encoding(path: Path, configured: str | None) -> tuple[str, str]:
    """(encoding, how it was chosen). BOM first, then UTF-8, then detection."""
    if configured:
        try:
            codecs.lookup(configured)
        except LookupError as error:
            raise SourceFormatError(path, f"unknown encoding {configured!r} in data.files[].encoding") from error
        return configured, f"encoding {configured} (configured)"
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
        complete = len(head) < SNIFF_BYTES
    for bom, name in (
        (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if head.startswith(bom):
            return name, f"encoding {name} (BOM)"
    if b"\x00" in head[:4096]:
        from charset_normalizer import from_bytes

        best = from_bytes(head, cp_isolation=["utf_16", "utf_16_le", "utf_16_be", "utf_32"]).best()
        if best is None or not best.encoding.startswith(("utf_16", "utf_32")):
            raise SourceFormatError(path, "looks like a binary file, not text")
        return best.encoding, f"encoding {best.encoding} (detected)"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=complete)
        return "utf-8", ""
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    matches = list(from_bytes(head, cp_isolation=list(DETECT_ENCODINGS)))
    if not matches:
        raise SourceFormatError(
            path, "neither UTF-8 nor a recognisable encoding; set data.files[].encoding (e.g. cp1252, latin-1)"
        )
    # On short text several code pages tie (cp1257 reads "è" as "č"): a tie goes to cp1252, the
    # Western code page the project's languages (en, pt) are exported in.
    best = min(matches, key=lambda m: (round(m.chaos, 2), m.encoding != "cp1252"))
    logger.warning("%s is not UTF-8: read as %s (detected); set data.files[].encoding if that is wrong", path, best.encoding)
    return best.encoding, f"encoding {best.encoding} (detected)"


def _decode_error(path: Path, encoding: str, error: UnicodeDecodeError) -> SourceFormatError:
    """Locate a decoding error by line (only on this error path is the whole file read)."""
    data = path.read_bytes()
    try:
        data.decode(encoding)
        line = None
    except UnicodeDecodeError as full:
        line = data[: full.start].count(b"\n") + 1
        error = full
    return SourceFormatError(
        path, f"not valid {encoding} (byte {error.start}, {error.object[error.start:error.start + 1]!r}); "
        "set data.files[].encoding or re-encode the file", record=f"line {line}" if line else None,
    )


def _open_text(path: Path, source: SourceFile, notes: list[str]) -> tuple[TextIO, str]:
    encoding, how = _detect_encoding(path, source.encoding)
    if how:
        notes.append(how)
    # newline="": line ends are kept as they are, so CSV fields keep their embedded line breaks.
    return path.open("r", encoding=encoding, newline=""), encoding


# --- JSON and JSONL -------------------------------------------------------------------------------


def _load_json_text(path: Path, text: str, record: str | None = None) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise SourceFormatError(
            path, f"invalid JSON ({error.msg} at line {error.lineno}, column {error.colno})", record
        ) from error


def _is_record_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and any(isinstance(item, dict) for item in value)


def _list_units(items: list[Any], prefix: str) -> Iterator[_Unit]:
    for index, item in enumerate(items):
        locator = f"{prefix}record {index}"
        if isinstance(item, dict):
            yield _Unit(locator, item)
        else:
            yield _Unit(
                locator, rejected=f"wrong_type: {locator} is a {type(item).__name__}, not an object",
                raw=json.dumps(item, ensure_ascii=False, default=str),
            )


def _json_units(ctx: _Context, document: Any) -> tuple[list[_Unit], str]:
    path = ctx.path
    if isinstance(document, dict) and detect_field(document, QUESTION_KEYS) is not None:
        document = [document]  # one record (its own list-valued fields are not a container)
    if isinstance(document, dict):
        lists = [k for k, v in document.items() if _is_record_list(v)]
        if len(lists) > 1:
            # Several record lists (train/test, drug A/drug B): all are read; each record's locator
            # names its list.
            ctx.notes.append(f"record lists {lists}")
            return [u for k in lists for u in _list_units(document[k], f"{k!r} ")], "records"
        list_key = next((k for k in RECORD_LIST_KEYS if isinstance(document.get(k), list)), lists[0] if lists else None)
        if list_key is not None:
            document = document[list_key]
        elif document and all(isinstance(v, dict) for v in document.values()):
            # {"<id>": {record}, ...}: the key is the id unless the record has one.
            return [_Unit(f"key {k!r}", {"id": k, **v}) for k, v in document.items()], "records"
        else:
            raise SourceFormatError(
                path, f"a JSON object without a list of records; its keys are {list(document)[:20]} "
                "(expected a list of objects, an object per id, or one record)"
            )
    if not isinstance(document, list):
        raise SourceFormatError(path, f"expected a JSON list or object of records, got {type(document).__name__}")
    return list(_list_units(document, "")), "records"


def _jsonl_units(path: Path, handle: TextIO, encoding: str) -> Iterator[_Unit]:
    # Text-mode lines end only at \n, \r or \r\n (never at U+2028/U+2029, which may stand
    # unescaped inside JSON strings).
    number = 0
    try:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            locator = f"line {number}"
            try:
                item = json.loads(line)
            except json.JSONDecodeError as error:
                yield _Unit(locator, rejected=f"unparsable_row: invalid JSON ({error.msg} at column {error.colno})", raw=line)
                continue
            if isinstance(item, dict):
                yield _Unit(locator, item)
            else:
                yield _Unit(locator, rejected=f"wrong_type: {locator} is a {type(item).__name__}, not an object", raw=line)
    except UnicodeDecodeError as error:
        raise _decode_error(path, encoding, error) from error


# --- CSV and TSV ---------------------------------------------------------------------------------


class _Lines:
    """Physical lines of a text file with their numbers, and a way to read some of them again.

    ``csv.reader`` pulls lines from here; when a row cannot be parsed (a quote that never closes
    swallows the lines after it), only its first line is rejected and the others are pushed back
    and parsed as the rows they are."""

    def __init__(self, handle: TextIO):
        self.handle = handle
        self.pending: deque[tuple[int, str]] = deque()
        self.read = 0
        self.consumed: list[tuple[int, str]] = []

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self.pending:
            number, line = self.pending.popleft()
        else:
            line = self.handle.readline()
            if not line:
                raise StopIteration
            self.read += 1
            number = self.read
        self.consumed.append((number, line))
        return line


def _sniff_delimiter(path: Path, sample: str) -> str:
    """``,`` ``;`` or tab: csv.Sniffer on the first lines, else the one that splits the header most."""
    lines = sample.splitlines()
    sample = "\n".join(lines[:-1] if len(lines) > 1 else lines)  # the last line may be cut short
    try:
        delimiter = csv.Sniffer().sniff(sample, delimiters=",;\t").delimiter
    except csv.Error:
        delimiter = ""
    header = lines[0] if lines else ""
    if not delimiter or header.count(delimiter) == 0:
        counts = {d: header.count(d) for d in (",", ";", "\t")}
        delimiter = max(counts, key=lambda d: counts[d])
        if counts[delimiter] == 0:
            raise SourceFormatError(path, "the header row has a single column (no `,`, `;` or tab); set data.files[].delimiter")
    return delimiter


def _check_header(path: Path, header: list[str], where: str) -> None:
    """Two columns with the same name would silently lose one of them: refuse the file."""
    seen: dict[str, str] = {}
    for name in header:
        if name and _normalise(name) in seen:
            raise SourceFormatError(
                path, f"the header has two columns named {seen[_normalise(name)]!r} and {name!r}; rename one", where
            )
        seen[_normalise(name)] = name


def _csv_units(path: Path, handle: TextIO, encoding: str, delimiter: str | None, notes: list[str]) -> Iterator[_Unit]:
    csv.field_size_limit(sys.maxsize)  # fields of any size (a 1 MB answer is text, not an error)
    try:
        if delimiter is None:
            sample = handle.read(SNIFF_BYTES)
            handle.seek(0)
            delimiter = _sniff_delimiter(path, sample.lstrip("\ufeff"))
            if delimiter != ",":
                notes.append(f"delimiter {delimiter!r} (sniffed)")
        lines = _Lines(handle)
        reader = csv.reader(lines, delimiter=delimiter, quotechar='"', doublequote=True, strict=True)
        header: list[str] | None = None
        while True:
            lines.consumed = []
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as error:
                first_number, first_line = lines.consumed[0] if lines.consumed else (lines.read, "")
                if header is None:
                    raise SourceFormatError(path, f"the header row cannot be parsed ({error})", f"row {first_number}") from error
                lines.pending.extendleft(reversed(lines.consumed[1:]))
                hint = " (a quote opened in this row is never closed)" if "end of data" in str(error) or "expected after" in str(error) else ""
                yield _Unit(f"row {first_number}", rejected=f"unparsable_row: {error}{hint}", raw=first_line)
                continue
            number = lines.consumed[0][0]
            if not any(cell.strip() for cell in cells):
                continue  # a blank line holds no record
            if header is None:
                header = [cell.lstrip("\ufeff").strip() for cell in cells]
                _check_header(path, header, f"row {number}")
                continue
            locator = f"row {number}"
            width = len(header)
            extra = cells[width:]
            if len(cells) < width or any(cell.strip() for cell in extra):
                yield _Unit(
                    locator, rejected=f"ragged_row: {locator} has {len(cells)} fields, the header has {width}",
                    raw="".join(line for _, line in lines.consumed),
                )
                continue
            yield _Unit(locator, dict(zip(header, cells)))
        if header is None:
            raise SourceFormatError(path, "file is empty")
    except UnicodeDecodeError as error:
        raise _decode_error(path, encoding, error) from error


# --- spreadsheets and Parquet -----------------------------------------------------------------------


def _xlsx_units(path: Path, notes: list[str]) -> Iterator[_Unit]:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as error:  # openpyxl raises zipfile/KeyError/InvalidFileException for broken files
        raise SourceFormatError(path, f"not a readable XLSX workbook ({type(error).__name__}: {error})") from error
    try:
        # Every sheet (max_row is unknown in read-only mode for files without a <dimension>).
        sheets = list(workbook.worksheets)
        if len(sheets) > 1:
            notes.append(f"sheets {[ws.title for ws in sheets]}")
        for sheet in sheets:
            prefix = f"sheet {sheet.title!r} " if len(sheets) > 1 else ""
            header: list[str] | None = None
            for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
                if all(v is None or (isinstance(v, str) and not v.strip()) for v in values):
                    continue
                if header is None:
                    header = ["" if v is None else str(v).strip() for v in values]
                    while header and not header[-1]:
                        header.pop()
                    _check_header(path, header, f"{prefix}row {number}")
                    continue
                locator = f"{prefix}row {number}"
                extra = values[len(header):]
                if any(v is not None and str(v).strip() for v in extra):
                    yield _Unit(locator, rejected=f"ragged_row: {locator} has cells beyond the {len(header)} header columns",
                                raw="\t".join("" if v is None else str(v) for v in values))
                    continue
                yield _Unit(locator, {h: v for h, v in zip(header, values) if h})
    finally:
        workbook.close()


def _parquet_units(path: Path) -> Iterator[_Unit]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as error:  # pyarrow raises ArrowInvalid/OSError for broken files
        raise SourceFormatError(path, f"not a readable Parquet file ({error})") from error
    index = 0
    for batch in parquet.iter_batches(batch_size=4096):
        for row in batch.to_pylist():
            yield _Unit(f"record {index}", row)
            index += 1


# --- MedQuAD XML ---------------------------------------------------------------------------------


def _element_text(element: Any) -> str | None:
    """``None`` when the element is absent, else all of its text, children's included (``<b>``, ``<i>``), stripped."""
    if element is None:
        return None
    return "".join(element.itertext()).strip()


# MedQuAD files come in three schemas (all seen in the released collection):
# root tag -> (id attribute, collection attribute, focus element, pair element, question, answer)
MEDQUAD_SCHEMAS: dict[str, tuple[str, str, str, str, str, str]] = {
    "Document": ("id", "source", "Focus", "QAPair", "Question", "Answer"),
    "DiseaseFile": ("fid", "source", "Focus", "QAPair", "Question", "Answer"),
    "doc": ("docid", "corpus", "doctitle-focus", "pair", "question", "answer"),
}


def read_medquad_xml(path: Path, data: bytes | None = None) -> list[QARecord]:
    """MedQuAD's ``<Document><Focus/><QAPairs><QAPair><Question qid qtype/><Answer/>`` and its two
    older variants (``<DiseaseFile>``, and ``<doc><doctitle-focus/><qaPairs><pair><question/><answer/>``).

    Parsed from bytes by defusedxml, so the declared encoding is honoured and DTDs, entity
    declarations and external references are refused."""
    import defusedxml.ElementTree as DET
    from defusedxml import DefusedXmlException

    try:
        root = DET.fromstring(path.read_bytes() if data is None else data, forbid_dtd=True)
    except DefusedXmlException as error:
        raise SourceFormatError(path, f"refused XML: {error} (DTDs and entities are not allowed)") from error
    except Exception as error:  # xml.etree.ElementTree.ParseError, LookupError for an unknown declared encoding
        raise SourceFormatError(path, f"invalid XML ({error})") from error
    if root.tag not in MEDQUAD_SCHEMAS:
        raise SourceFormatError(
            path, f"expected a MedQuAD <Document> root (or <DiseaseFile>, <doc>), got <{root.tag}>"
        )
    id_attr, collection_attr, focus_tag, pair_tag, question_tag, answer_tag = MEDQUAD_SCHEMAS[root.tag]
    collection = root.get(collection_attr) or path.parent.name
    focus = (_element_text(root.find(focus_tag)) or path.stem).strip()
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


# --- one file ------------------------------------------------------------------------------------


def detect_format(path: Path) -> str:
    fmt = SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise SourceFormatError(path, f"unknown file type {path.suffix!r}; set data.files[].format")
    return fmt


def read_file(source: SourceFile, relative: str | None = None) -> FileRead:
    """Every record in one file, with the count of what the file holds (``format: auto`` goes by
    the suffix). ``relative`` (the path below the configured folder) makes generated ids unique."""
    path = Path(source.path)
    if not path.is_file():
        raise SourceFormatError(path, "file not found")
    fmt = detect_format(path) if source.format == "auto" else source.format
    if fmt == "pdf":
        raise SourceFormatError(path, "a PDF is a document, not records: read it with read_pdf_leaflet")
    if path.stat().st_size == 0:
        raise SourceFormatError(path, "file is empty")
    ctx = _Context(path=path, relative=relative or path.name, overrides=source.fields)
    unit = "records"
    if fmt == "xml":
        records = read_medquad_xml(path)
        unit = "QA pairs"
    elif fmt == "xlsx":
        records = list(_records(ctx, _xlsx_units(path, ctx.notes)))
        unit = "rows"
    elif fmt == "parquet":
        records = list(_records(ctx, _parquet_units(path)))
        unit = "rows"
    else:
        handle, encoding = _open_text(path, source, ctx.notes)
        with handle:
            if fmt == "json":
                try:
                    text = handle.read()
                except UnicodeDecodeError as error:
                    raise _decode_error(path, encoding, error) from error
                if not text.strip():
                    raise SourceFormatError(path, "file is empty")
                units, unit = _json_units(ctx, _load_json_text(path, text))
                del text
                records = list(_records(ctx, units))
            elif fmt == "jsonl":
                records = list(_records(ctx, _jsonl_units(path, handle, encoding)))
                unit = "lines"
            else:
                delimiter = "\t" if fmt == "tsv" and source.delimiter is None else source.delimiter
                records = list(_records(ctx, _csv_units(path, handle, encoding, delimiter, ctx.notes)))
                unit = "rows"
    if not records:
        if fmt in ("json", "jsonl", "csv", "tsv") and not path.read_bytes().strip(b" \t\r\n\x00\xef\xbb\xbf\xff\xfe"):
            raise SourceFormatError(path, "file is empty")
        if fmt == "xml":
            return FileRead([], SourceCount(source=str(path), format=fmt, held=0, unit=unit))
        raise SourceFormatError(path, "no records in file")
    count = SourceCount(source=str(path), format=fmt, held=len(records), unit=unit, note="; ".join(ctx.notes))
    return FileRead(records, count)


def read_source_file(source: SourceFile, relative: str | None = None) -> list[QARecord]:
    """Every record in one file (see :func:`read_file`)."""
    return read_file(source, relative).records


# --- folders -------------------------------------------------------------------------------------


@dataclass
class SourceScan:
    """What the configured sources stand for: the files to read (each with its path relative to its
    configured source), the files no reader handles, and OS litter skipped by name."""

    files: list[tuple[SourceFile, str]] = field(default_factory=list)
    unhandled: list[str] = field(default_factory=list)
    litter: list[str] = field(default_factory=list)


def is_litter(path: Path) -> bool:
    return path.name in LITTER_NAMES or path.name.startswith("._") or "__MACOSX" in path.parts


def scan_sources(sources: Iterable[SourceFile]) -> SourceScan:
    """A directory stands for every file directly or deeply inside it, sorted."""
    scan = SourceScan()
    for source in sources:
        path = Path(source.path).expanduser()
        if not path.is_dir():
            scan.files.append((source.model_copy(update={"path": path}), path.name))
            continue
        for child in sorted(p for p in path.rglob("*") if p.is_file()):
            relative = child.relative_to(path).as_posix()
            if is_litter(child.relative_to(path)):
                scan.litter.append(str(child))
            elif source.format != "auto" or child.suffix.lower() in SUFFIX_FORMATS:
                scan.files.append((source.model_copy(update={"path": child}), relative))
            else:
                scan.unhandled.append(str(child))
    return scan


def expand_sources(sources: Iterable[SourceFile]) -> Iterator[SourceFile]:
    """The readable files the configured sources stand for (see :func:`scan_sources`)."""
    for source, _ in scan_sources(sources).files:
        yield source
