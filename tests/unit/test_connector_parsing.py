"""Connector parsing and staging without a server: names, headings, dates, staged pages, key masking."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from drugslm_core.data.connectors.anvisa import Product, ProductPage
from drugslm_core.data.connectors.base import ConnectorError, StagingArea, parse_response, redacted
from drugslm_core.data.connectors.openfda import LabelPage, OpenFDALabel, _strip_repeated_headings, label_name
from drugslm_core.data.connectors.pdf import extract_pdf_pages
from drugslm_core.data.connectors.pubmed import ESearchReply, publication_year
from drugslm_core.data.documents import Document, DocumentSection, RawPayload
from drugslm_core.data.records import QARecord, QuarantinedRecord
from drugslm_core.data.sources import SourceFormatError


@pytest.mark.parametrize(("label", "expected"), [
    ({"openfda": {"generic_name": ["METFORMIN"], "brand_name": ["Glucophage"]}}, ("METFORMIN", "openfda.generic_name")),
    ({"openfda": {"brand_name": ["Glucophage"]}}, ("Glucophage", "openfda.brand_name")),
    ({"openfda": {}, "spl_product_data_elements": ["Ibuprofen Ibuprofen IBUPROFEN IBUPROFEN STARCH"]},
     ("Ibuprofen", "spl_product_data_elements")),
    ({"openfda": {}, "spl_product_data_elements": ["Acetaminophen PM Acetaminophen PM ACETAMINOPHEN 500 mg"]},
     ("Acetaminophen PM", "spl_product_data_elements")),
    ({"openfda": {}, "spl_product_data_elements": ["Advil Ibuprofen IBUPROFEN IBUPROFEN"]},
     ("Advil Ibuprofen", "spl_product_data_elements")),
    ({"openfda": {}, "title": ["  Zinc oxide\n ointment "]}, ("Zinc oxide ointment", "title")),
    ({"openfda": {"generic_name": [""]}, "spl_product_data_elements": [""]}, None),
    ({"openfda": {}}, None),
])
def test_label_name_fallbacks(label, expected):
    assert label_name(label) == expected


@pytest.mark.parametrize(("field", "text", "expected"), [
    ("indications_and_usage", "Uses Uses temporarily relieves pain", "temporarily relieves pain"),
    ("indications_and_usage", "Uses: temporarily relieves pain", "temporarily relieves pain"),
    ("purpose", "Purpose Purpose Antacid", "Antacid"),
    ("dosage_and_administration", "Directions Directions adults: 2 tablets", "adults: 2 tablets"),
    ("warnings", "WARNINGS Warnings Reye's syndrome: children", "Reye's syndrome: children"),
    ("do_not_use", "Do not use if allergic", "Do not use if allergic"),  # a sentence: not in the heading list
    ("indications_and_usage", "Uses", "Uses"),  # nothing after the heading: left as it is
    ("indications_and_usage", "Useful for minor pain", "Useful for minor pain"),  # a word, not the heading
    ("indications_and_usage", "Uses of this product include pain relief", "Uses of this product include pain relief"),
    ("dosage_and_administration", "Directions for use: shake well", "Directions for use: shake well"),
    ("warnings", "Warnings and precautions apply", "Warnings and precautions apply"),
])
def test_repeated_headings_are_removed_and_only_them(field, text, expected):
    assert _strip_repeated_headings(text, field) == expected


@pytest.mark.parametrize(("xml", "year"), [
    ("<PubDate><Year>2021</Year><Month>Mar</Month></PubDate>", "2021"),
    ("<PubDate><MedlineDate>1998 Dec-1999 Jan</MedlineDate></PubDate>", "1998"),
    ("<PubDate><MedlineDate>Spring 2004</MedlineDate></PubDate>", "2004"),
    ("<PubDate><MedlineDate>unknown</MedlineDate></PubDate>", ""),
])
def test_publication_year_reads_medline_dates(xml, year):
    assert publication_year(ET.fromstring(xml)) == year
    assert publication_year(None) == ""


def test_staged_page_round_trips_documents_binary_payloads_and_quarantine(tmp_path):
    staging = StagingArea(tmp_path, "anvisa")
    document = Document(
        id="anvisa:1", title="X", source="anvisa", locator="item 0", kind="leaflet", language="pt",
        sections=[DocumentSection(name="dosage", heading="Posologia", text="1 comprimido ao dia, não mastigar.")],
        payload_ids=["abc"],
    )
    body = b"%PDF-1.4\n\xff\xfe\x00binary"
    payload = RawPayload(id=RawPayload.digest(body), source="anvisa", url="http://x/y", status=200,
                         content_type="application/pdf", body=body)
    entry = QuarantinedRecord(
        record=QARecord(id="anvisa:2", question=None, answer=None, focus="Y", source="anvisa", locator="item 1"),
        reasons=["unreadable_leaflet: not a PDF"],
    )
    first = staging.stage([document], [payload], [entry])
    second = staging.stage([], [], [])
    assert staging.staged() == [first, second] and first.name < second.name
    assert staging.load(first) == ([document], [payload], [entry])
    StagingArea.acknowledge([first])
    assert staging.staged() == [second]


def test_unreadable_staged_page_is_named(tmp_path):
    staging = StagingArea(tmp_path, "pubmed")
    path = staging.stage([], [], [])
    path.write_text("{half", encoding="utf-8")
    with pytest.raises(ConnectorError, match="staged page cannot be read") as caught:
        staging.load(path)
    assert str(path) in str(caught.value)


def test_api_keys_are_masked():
    assert redacted("https://api.fda.gov/drug/label.json?search=x&api_key=SECRET&limit=2") == (
        "https://api.fda.gov/drug/label.json?search=x&api_key=%2A%2A%2A&limit=2"
    )
    assert redacted("https://x/y?a=1") == "https://x/y?a=1"


def test_user_password_pdf_is_refused_with_its_reason():
    import io

    from pypdf import PdfReader, PdfWriter

    from tests.data.pdf_factory import PORTUGUESE_LEAFLET, make_pdf

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf(PORTUGUESE_LEAFLET))))
    writer.encrypt(user_password="user-secret", owner_password="owner", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    with pytest.raises(SourceFormatError, match="needs a user password"):
        extract_pdf_pages(out.getvalue(), "bula.pdf")


@pytest.mark.parametrize(("model", "body", "field", "message"), [
    (LabelPage, {"results": [], "meta": {"results": {"total": "3"}}}, "meta.results.total",
     "valid integer (got str)"),
    (LabelPage, {"meta": {"results": {"total": 3}}}, "results", "Field required"),
    (LabelPage, [], None, "valid dictionary"),
    (OpenFDALabel, {"openfda": {"brand_name": "Advil"}}, "openfda.brand_name", "valid list (got str)"),
    (ESearchReply, {"esearchresult": {"idlist": ["1", 2], "count": "2"}}, "esearchresult.idlist[1]",
     "valid string (got int)"),
    (ESearchReply, {"esearchresult": {"idlist": [], "count": "many"}}, "esearchresult.count", "valid integer"),
    (Product, {"nomeProduto": "  ", "numeroRegistro": "1.2"}, "nomeProduto", "at least 1 character"),
    (ProductPage, {"content": {}}, "content", "valid list (got dict)"),
])
def test_json_shapes_name_source_place_and_field(model, body, field, message):
    with pytest.raises(ConnectorError, match=re.escape(message)) as caught:
        parse_response(model, body, "src", "https://api.example/x page=2")
    assert caught.value.field == field and caught.value.source == "src"
    assert str(caught.value).startswith("src: https://api.example/x page=2")


def test_json_shapes_read_what_the_apis_send():
    label = OpenFDALabel.model_validate({"set_id": "s", "openfda": {}, "title": "T", "unknown": 1, "purpose": ["p"]})
    assert (label.label_id, label.purpose, label_name(label)) == ("s", ["p"], ("T", "title"))
    assert ESearchReply.model_validate({"esearchresult": {"idlist": ["1"], "count": "12"}}).esearchresult.count == 12
    product = Product.model_validate({"nomeProduto": " X ", "numeroRegistro": "1", "idProduto": 7,
                                      "idBulaPacienteProtegido": "tok"})
    assert (product.name, product.product_id, product.leaflet_token("paciente")) == ("X", 7, "tok")
    assert product.leaflet_token("profissional") is None
