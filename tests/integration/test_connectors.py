"""Source connectors against a local HTTP server on 127.0.0.1 (started here, bounded).

The payloads follow the public APIs' response shapes (openFDA label, NCBI E-utilities
esearch JSON + efetch XML, arXiv Atom, ANVISA's bulario JSON + leaflet PDF); they were
written from the APIs' documentation as known to the author, not captured from the
live services (no network here).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import ValidationError

from drugslm_core.config import (
    AnvisaSettings,
    ArxivSettings,
    ChunkingSettings,
    ConnectorSettings,
    DataSettings,
    HttpSettings,
    OpenFDASettings,
    PubMedSettings,
    ValidationSettings,
)
from drugslm_core.data.connectors import (
    ConnectorError,
    CursorStore,
    HttpFetcher,
    RateLimiter,
    StagingArea,
    acknowledge_runs,
    quarantine_records,
    run_connector,
    run_enabled_connectors,
    run_summary,
)
from drugslm_core.data.connectors import openfda as openfda_module
from drugslm_core.data.connectors import pubmed as pubmed_module
from drugslm_core.data.connectors.anvisa import AnvisaConnector
from drugslm_core.data.connectors.arxiv import ArxivConnector
from drugslm_core.data.connectors.openfda import OpenFDAConnector
from drugslm_core.data.connectors.pubmed import PubMedConnector
from drugslm_core.data.documents import RawPayload
from drugslm_core.data.ingest import ingest_sources
from drugslm_core.data.questions import documents_to_records
from drugslm_core.data.records import Quarantine
from drugslm_core.quality.gate import apply_quality_gate
from tests.data.pdf_factory import PORTUGUESE_LEAFLET, make_pdf

FAST = HttpSettings(timeout_s=5, max_retries=3, backoff_s=0.01, max_backoff_s=0.05, requests_per_second=1000, max_pages=20)
Response = tuple[int, dict[str, str], bytes]


@dataclass
class LocalServer:
    url: str
    routes: dict[str, Callable[[dict[str, list[str]]], Response]] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, list[str]], dict[str, str]]] = field(default_factory=list)

    def hits(self, path: str) -> int:
        return sum(1 for p, _, _ in self.requests if p == path)


@pytest.fixture
def server() -> Iterator[LocalServer]:
    state = LocalServer(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            state.requests.append((parts.path, query, dict(self.headers)))
            route = state.routes.get(parts.path)
            status, headers, body = route(query) if route else (404, {}, b"no route")
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def as_json(document: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(document).encode()


# --- openFDA ---------------------------------------------------------------------------


def openfda_label(i: int) -> dict:
    return {
        "id": f"id-{i}", "set_id": f"set-{i}", "effective_time": "20240101", "version": "3",
        "openfda": {"generic_name": [f"DRUGNAME{i}"], "brand_name": [f"Brand{i}"]},
        "indications_and_usage": [f"1 INDICATIONS AND USAGE Drug {i} is indicated for hypertension in adults."],
        "dosage_and_administration": [f"2 DOSAGE AND ADMINISTRATION Take {i} mg once daily."],
        "warnings_and_cautions": ["5 WARNINGS AND PRECAUTIONS Monitor renal function."],
        "boxed_warning": ["WARNING: FETAL TOXICITY Discontinue when pregnancy is detected."],
        "storage_and_handling": ["Store at 20 to 25 °C."],
        "spl_product_data_elements": ["ignored"],
    }


def openfda_route(total: int) -> Callable[[dict[str, list[str]]], Response]:
    def route(query: dict[str, list[str]]) -> Response:
        skip, limit = int(query.get("skip", ["0"])[0]), int(query["limit"][0])
        results = [openfda_label(i) for i in range(skip, min(skip + limit, total))]
        return as_json({"meta": {"disclaimer": "…", "results": {"skip": skip, "limit": limit, "total": total}}, "results": results})

    return route


def test_openfda_pages_until_total_and_keeps_raw_payloads(server):
    server.routes["/drug/label.json"] = openfda_route(total=5)
    connector = OpenFDAConnector(OpenFDASettings(base_url=server.url, page_size=2, search='openfda.generic_name:"x"'))
    run = run_connector(connector, FAST, max_documents=50)
    assert [d.id for d in run.documents] == [f"openfda:set-{i}" for i in range(5)]
    assert run.pages == 3 and run.exhausted
    first = run.documents[0]
    assert first.title == "DRUGNAME0"
    assert [(s.name, s.heading) for s in first.sections] == [
        ("indications", "indications_and_usage"), ("dosage", "dosage_and_administration"),
        ("warnings", "boxed_warning + warnings_and_cautions"), ("storage", "storage_and_handling"),
    ]
    by_name = {s.name: s.text for s in first.sections}
    assert by_name["indications"] == "Drug 0 is indicated for hypertension in adults."  # echoed heading removed
    assert by_name["warnings"].startswith("WARNING: FETAL TOXICITY")
    assert [q.get("skip") for p, q, _ in server.requests] == [None, ["2"], ["4"]]  # no skip on the first request
    assert all(q["search"] == ['openfda.generic_name:"x"'] for _, q, _ in server.requests)
    assert len(run.payloads) == 3
    assert {p.id for p in run.payloads} == {pid for d in run.documents for pid in d.payload_ids}
    assert all(p.id == RawPayload.digest(p.body) and json.loads(p.body)["results"] for p in run.payloads)


def test_openfda_not_found_is_an_empty_result(server):
    server.routes["/drug/label.json"] = lambda q: as_json({"error": {"code": "NOT_FOUND", "message": "No matches found!"}}, 404)
    run = run_connector(OpenFDAConnector(OpenFDASettings(base_url=server.url)), FAST, max_documents=10)
    assert run.documents == [] and run.exhausted


def test_openfda_bad_field_is_named(server):
    label = openfda_label(0) | {"dosage_and_administration": "not a list"}
    server.routes["/drug/label.json"] = lambda q: as_json({"meta": {"results": {"total": 1}}, "results": [label]})
    with pytest.raises(ConnectorError) as caught:
        run_connector(OpenFDAConnector(OpenFDASettings(base_url=server.url)), FAST, max_documents=10)
    assert caught.value.field == "dosage_and_administration"
    assert "skip=0 result 0" in str(caught.value)


def test_max_documents_bounds_the_run(server):
    server.routes["/drug/label.json"] = openfda_route(total=1000)
    run = run_connector(OpenFDAConnector(OpenFDASettings(base_url=server.url, page_size=4)), FAST, max_documents=10)
    assert len(run.documents) == 10
    assert [int(q["limit"][0]) for _, q, _ in server.requests] == [4, 4, 2]
    assert not run.exhausted and run.end_cursor == {"skip": 10}


def test_max_pages_bounds_a_runaway_source(server):
    server.routes["/drug/label.json"] = openfda_route(total=10_000)
    settings = FAST.model_copy(update={"max_pages": 3})
    run = run_connector(OpenFDAConnector(OpenFDASettings(base_url=server.url, page_size=1)), settings, max_documents=10_000)
    assert run.pages == 3 and server.hits("/drug/label.json") == 3


# --- resumable cursor ------------------------------------------------------------------------


def test_resumes_from_the_stored_cursor(server, tmp_path):
    server.routes["/drug/label.json"] = openfda_route(total=7)
    store = CursorStore(tmp_path / "state")
    connector = OpenFDAConnector(OpenFDASettings(base_url=server.url, page_size=3))
    first = run_connector(connector, FAST, max_documents=3, state=store)
    assert store.load("openfda") == {"skip": 3}
    acknowledge_runs([first])  # ingest holds them: not replayed again
    second = run_connector(connector, FAST, max_documents=100, state=store)
    acknowledge_runs([second])
    assert [d.id for d in first.documents + second.documents] == [f"openfda:set-{i}" for i in range(7)]
    assert second.start_cursor == {"skip": 3} and second.exhausted
    assert store.load("openfda") == {"done": True}
    requests_before = len(server.requests)
    third = run_connector(connector, FAST, max_documents=100, state=store)
    assert third.documents == [] and third.exhausted and len(server.requests) == requests_before


def test_a_failure_after_page_two_loses_no_document(server, tmp_path):
    """Pages 1-2 are staged before the cursor moves past them; the run after the failure replays them."""
    calls = {"n": 0}

    def flaky_after_two_pages(query):
        calls["n"] += 1
        if calls["n"] > 2:
            return 400, {}, b"bad request"
        return openfda_route(total=10)(query)

    server.routes["/drug/label.json"] = flaky_after_two_pages
    store = CursorStore(tmp_path)
    connector = OpenFDAConnector(OpenFDASettings(base_url=server.url, page_size=2))
    with pytest.raises(ConnectorError, match="HTTP 400") as caught:
        run_connector(connector, FAST, max_documents=10, state=store)
    assert store.load("openfda") == {"skip": 4}
    assert [d.id for d in caught.value.run.documents] == [f"openfda:set-{i}" for i in range(4)]
    assert len(StagingArea(tmp_path, "openfda").staged()) == 2
    server.routes["/drug/label.json"] = openfda_route(total=10)
    resumed = run_connector(connector, FAST, max_documents=10, state=store)
    assert [d.id for d in resumed.documents] == [f"openfda:set-{i}" for i in range(10)]
    assert resumed.replayed == 4 and resumed.exhausted
    assert {p.id for p in resumed.payloads} >= {pid for d in resumed.documents for pid in d.payload_ids}
    acknowledge_runs([resumed])
    assert StagingArea(tmp_path, "openfda").staged() == []
    again = run_connector(connector, FAST, max_documents=10, state=store)
    assert again.documents == [] and again.exhausted


def test_corrupt_cursor_file_is_an_error(tmp_path):
    (tmp_path / "openfda.cursor.json").write_text("{not json")
    with pytest.raises(ConnectorError, match="stored cursor is not valid JSON"):
        CursorStore(tmp_path).load("openfda")


# --- retries, backoff, rate limit ------------------------------------------------------------------


def test_retries_transient_errors_with_backoff(server):
    statuses = iter([503, 429, 200])

    def route(query):
        status = next(statuses)
        return as_json({"ok": status == 200}, status, {"Retry-After": "0"} if status == 429 else None)

    server.routes["/x"] = route
    with HttpFetcher("unit", FAST) as http:
        body, _ = http.get_json(f"{server.url}/x")
        assert body == {"ok": True}
        assert (http.requests, http.retries) == (3, 2)
        assert len(http.payloads) == 1  # only the successful body is kept


def test_gives_up_after_max_retries_naming_the_url(server):
    server.routes["/down"] = lambda q: (503, {}, b"unavailable")
    with HttpFetcher("unit", FAST) as http, pytest.raises(ConnectorError) as caught:
        http.get(f"{server.url}/down")
    assert "HTTP 503 after 3 attempts" in str(caught.value)
    assert "/down" in str(caught.value)
    assert server.hits("/down") == 3


def test_client_errors_are_not_retried(server):
    server.routes["/forbidden"] = lambda q: (403, {}, b"no")
    with HttpFetcher("unit", FAST) as http, pytest.raises(ConnectorError, match="HTTP 403"):
        http.get(f"{server.url}/forbidden")
    assert server.hits("/forbidden") == 1


def test_connection_refused_is_retried_then_named():
    import socket

    with socket.socket() as probe:  # a loopback port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with HttpFetcher("unit", FAST) as http, pytest.raises(ConnectorError, match="ConnectError") as caught:
        http.get(f"http://127.0.0.1:{port}/x")
    assert http.requests == 3 and caught.value.source == "unit"


def test_invalid_json_response_is_named(server):
    server.routes["/x"] = lambda q: (200, {"Content-Type": "application/json"}, b'{"truncated": ')
    with HttpFetcher("unit", FAST) as http, pytest.raises(ConnectorError, match="not valid JSON"):
        http.get_json(f"{server.url}/x")


def test_rate_limiter_spaces_calls():
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(4.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        limiter.wait()
    assert slept == pytest.approx([0.25, 0.25, 0.25, 0.25])
    now[0] += 10  # idle time is not banked into a burst beyond one call
    assert limiter.wait() == 0.0
    assert limiter.wait() == pytest.approx(0.25)


# --- PubMed ----------------------------------------------------------------------------------------

PMIDS = [str(38000000 + i) for i in range(5)]


def efetch_xml(ids: list[str]) -> bytes:
    articles = "".join(
        f"""<PubmedArticle><MedlineCitation Status="MEDLINE" Owner="NLM"><PMID Version="1">{pmid}</PMID>
<Article PubModel="Print"><Journal><Title>Journal of Examples</Title><JournalIssue><PubDate><Year>2024</Year></PubDate></JournalIssue></Journal>
<ArticleTitle>Metformin and outcome {pmid}.</ArticleTitle>
<Abstract>{"" if pmid.endswith("4") else f'<AbstractText Label="BACKGROUND" NlmCategory="BACKGROUND">Background of <i>{pmid}</i>.</AbstractText><AbstractText Label="RESULTS">Results were good.</AbstractText>'}</Abstract>
</Article></MedlineCitation></PubmedArticle>"""
        for pmid in ids
    )
    return f'<?xml version="1.0" ?><!DOCTYPE PubmedArticleSet><PubmedArticleSet>{articles}</PubmedArticleSet>'.encode()


def test_pubmed_esearch_then_efetch(server):
    def esearch(query):
        start, size = int(query["retstart"][0]), int(query["retmax"][0])
        return as_json({"header": {"type": "esearch", "version": "0.3"}, "esearchresult": {
            "count": str(len(PMIDS)), "retmax": str(size), "retstart": str(start), "idlist": PMIDS[start:start + size],
        }})

    server.routes["/eutils/esearch.fcgi"] = esearch
    server.routes["/eutils/efetch.fcgi"] = lambda q: (200, {"Content-Type": "text/xml"}, efetch_xml(q["id"][0].split(",")))
    connector = PubMedConnector(PubMedSettings(base_url=f"{server.url}/eutils", term="metformin", page_size=2))
    run = run_connector(connector, FAST, max_documents=10)
    assert [d.id for d in run.documents] == [f"pubmed:{p}" for p in PMIDS]
    first = run.documents[0]
    assert first.title == "metformin"
    assert first.metadata["article_title"] == f"Metformin and outcome {PMIDS[0]}."
    assert first.sections[0].text == f"Background: Background of {PMIDS[0]}.\n\nResults: Results were good."
    assert run.documents[4].sections == []  # no abstract: kept, becomes a record the gate quarantines
    assert server.hits("/eutils/esearch.fcgi") == 3 and server.hits("/eutils/efetch.fcgi") == 3
    assert all(q["db"] == ["pubmed"] for p, q, _ in server.requests)
    assert len(run.payloads) == 6


def test_pubmed_error_field_is_named(server):
    server.routes["/eutils/esearch.fcgi"] = lambda q: as_json({"esearchresult": {"ERROR": "Invalid query"}})
    connector = PubMedConnector(PubMedSettings(base_url=f"{server.url}/eutils", term="x"))
    with pytest.raises(ConnectorError) as caught:
        run_connector(connector, FAST, max_documents=5)
    assert caught.value.field == "esearchresult.ERROR"


# --- arXiv -------------------------------------------------------------------------------------------


def atom_feed(start: int, size: int, total: int) -> bytes:
    entries = "".join(
        f"""<entry><id>http://arxiv.org/abs/2401.0000{i}v1</id><published>2024-01-0{i + 1}T00:00:00Z</published>
<title>Drug interaction extraction {i}</title><summary>  We study drug-drug
interactions {i}. </summary><author><name>A. Author</name></author><author><name>B. Author</name></author>
<link href="http://arxiv.org/abs/2401.0000{i}v1" rel="alternate" type="text/html"/></entry>"""
        for i in range(start, min(start + size, total))
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">
<title>arXiv Query</title><opensearch:totalResults>{total}</opensearch:totalResults>
<opensearch:startIndex>{start}</opensearch:startIndex><opensearch:itemsPerPage>{size}</opensearch:itemsPerPage>{entries}</feed>""".encode()


def test_arxiv_atom_paging(server):
    server.routes["/api/query"] = lambda q: (
        200, {"Content-Type": "application/atom+xml"},
        atom_feed(int(q["start"][0]), int(q["max_results"][0]), total=3),
    )
    connector = ArxivConnector(ArxivSettings(base_url=f"{server.url}/api/query", search_query="all:drug", page_size=2))
    run = run_connector(connector, FAST, max_documents=10)
    assert [d.id for d in run.documents] == ["arxiv:2401.00000v1", "arxiv:2401.00001v1", "arxiv:2401.00002v1"]
    assert run.documents[1].sections[0].text == "We study drug-drug interactions 1."
    assert run.documents[1].metadata["authors"] == "A. Author, B. Author"
    assert run.pages == 2 and run.exhausted


def test_arxiv_non_atom_response_is_an_error(server):
    server.routes["/api/query"] = lambda q: (200, {}, b"<html><body>rate limited</body></html>")
    connector = ArxivConnector(ArxivSettings(base_url=f"{server.url}/api/query", search_query="all:drug"))
    with pytest.raises(ConnectorError, match="expected an Atom <feed>"):
        run_connector(connector, FAST, max_documents=1)


# --- ANVISA ------------------------------------------------------------------------------------------


def anvisa_item(i: int, leaflet: bool = True) -> dict:
    return {
        "idProduto": 1000 + i, "nomeProduto": f"EXEMPLAMINA {i}", "numeroRegistro": f"1.2345.0{i:03d}",
        "razaoSocial": "LABORATORIO EXEMPLO S.A.", "cnpj": "12345678000195", "expediente": "123456/24-1",
        "dataAtualizacao": "2024-03-01T00:00:00.000-0300",
        "idBulaPacienteProtegido": f"token-{i}" if leaflet else None, "idBulaProfissionalProtegido": f"prof-{i}",
    }


def test_anvisa_search_pages_and_leaflet_pdfs(server):
    items = {"exemplamina": [anvisa_item(0), anvisa_item(1), anvisa_item(2, leaflet=False)], "outra": [anvisa_item(3)]}
    pdf = make_pdf(PORTUGUESE_LEAFLET)

    def bulario(query):
        name, page, count = query["filter[nomeProduto]"][0], int(query["page"][0]), int(query["count"][0])
        found = items[name]
        pages = -(-len(found) // count)
        content = found[(page - 1) * count: page * count]
        return as_json({"content": content, "totalElements": len(found), "totalPages": pages,
                        "number": page - 1, "size": count, "first": page == 1, "last": page >= pages})

    server.routes["/api/consulta/bulario"] = bulario
    for i in (0, 1, 3):
        server.routes[f"/api/consulta/medicamentos/arquivo/bula/parecer/token-{i}/"] = (
            lambda q: (200, {"Content-Type": "application/pdf"}, pdf)
        )
    settings = AnvisaSettings(base_url=f"{server.url}/api/consulta", product_names=["exemplamina", "outra"], page_size=2)
    run = run_connector(AnvisaConnector(settings), FAST, max_documents=10)
    assert [d.id for d in run.documents] == [
        "anvisa:1.2345.0000:paciente", "anvisa:1.2345.0001:paciente", "anvisa:1.2345.0002", "anvisa:1.2345.0003:paciente",
    ]
    leaflet, _, registry, _ = run.documents
    assert leaflet.kind == "leaflet" and leaflet.language == "pt" and leaflet.title == "EXEMPLAMINA 0"
    assert [s.name for s in leaflet.sections] == ["indications", "warnings", "storage", "dosage"]
    assert leaflet.metadata["numeroRegistro"] == "1.2345.0000"
    assert registry.kind == "registry" and "1.2345.0002" in registry.sections[0].text
    assert "cnpj" not in registry.metadata
    searches = [(q["filter[nomeProduto]"][0], q["page"][0]) for p, q, _ in server.requests if p.endswith("/bulario")]
    assert searches == [("exemplamina", "1"), ("exemplamina", "2"), ("outra", "1")]
    assert all(h.get("Authorization") == "Guest" for _, _, h in server.requests)
    assert sum(p.content_type == "application/pdf" for p in run.payloads) == 1  # same PDF bytes stored once
    assert len(leaflet.payload_ids) == 2


def test_anvisa_broken_leaflet_is_quarantined_and_the_rest_goes_on(server):
    server.routes["/api/consulta/bulario"] = lambda q: as_json(
        {"content": [anvisa_item(0), anvisa_item(1)], "totalPages": 1, "last": True}
    )
    server.routes["/api/consulta/medicamentos/arquivo/bula/parecer/token-0/"] = lambda q: (200, {}, b"<html>captcha</html>")
    server.routes["/api/consulta/medicamentos/arquivo/bula/parecer/token-1/"] = (
        lambda q: (200, {"Content-Type": "application/pdf"}, make_pdf(PORTUGUESE_LEAFLET))
    )
    settings = AnvisaSettings(base_url=f"{server.url}/api/consulta", product_names=["exemplamina"])
    run = run_connector(AnvisaConnector(settings), FAST, max_documents=10)
    assert [d.id for d in run.documents] == ["anvisa:1.2345.0000", "anvisa:1.2345.0001:paciente"]
    assert run.documents[0].kind == "registry"  # the product's registry entry is kept
    [entry] = run.quarantine
    assert entry.record.id == "anvisa:1.2345.0000:paciente" and entry.record.source == "anvisa"
    assert "item 0" in entry.record.locator and "idBulaPacienteProtegido" in entry.record.locator
    assert entry.reasons[0].startswith("unreadable_leaflet:") and "not a PDF" in entry.reasons[0]
    [record] = quarantine_records(run)  # what ingest hands to the quality gate
    assert record.answer is None and record.rejected.startswith("unreadable_leaflet:")


def test_anvisa_missing_registration_is_named(server):
    item = anvisa_item(0) | {"numeroRegistro": ""}
    server.routes["/api/consulta/bulario"] = lambda q: as_json({"content": [item], "totalPages": 1, "last": True})
    settings = AnvisaSettings(base_url=f"{server.url}/api/consulta", product_names=["x"], leaflet="none")
    with pytest.raises(ConnectorError) as caught:
        run_connector(AnvisaConnector(settings), FAST, max_documents=10)
    assert caught.value.field == "numeroRegistro"


# --- all enabled connectors, through the settings tree -----------------------------------------------


def test_run_enabled_connectors_from_settings(server, tmp_path):
    server.routes["/drug/label.json"] = openfda_route(total=2)
    server.routes["/api/query"] = lambda q: (200, {}, atom_feed(int(q["start"][0]), int(q["max_results"][0]), total=1))
    settings = ConnectorSettings(
        state_dir=tmp_path,
        openfda=OpenFDASettings(enabled=True, base_url=server.url, http=FAST),
        arxiv=ArxivSettings(enabled=True, base_url=f"{server.url}/api/query", search_query="all:drug", http=FAST),
    )
    runs = run_enabled_connectors(settings)
    assert [(r.source, len(r.documents)) for r in runs] == [("openfda", 2), ("arxiv", 1)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["arxiv.cursor.json", "openfda.cursor.json", "staged"]
    acknowledge_runs(runs)
    assert list((tmp_path / "staged").rglob("*.json")) == []


# --- issue 20: real-service limits and real-world records, from the fixtures in tests/data/connectors -------

FIXTURES = Path(__file__).parents[1] / "data" / "connectors"


def fixture_json(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def openfda_page(labels: list[dict], skip: int, limit: int, total: int) -> dict:
    page = fixture_json("openfda/page_over_skip_cap.json")
    page["meta"]["results"] = {"skip": skip, "limit": limit, "total": total}
    page["results"] = labels
    return page


def test_openfda_skip_cap_reports_fetched_n_of_m_and_is_not_done(server, tmp_path, monkeypatch):
    monkeypatch.setattr(openfda_module, "MAX_SKIP", 6)  # the real cap is 25,000 (asserted below); 6 keeps it small
    total = fixture_json("openfda/page_over_skip_cap.json")["meta"]["results"]["total"]

    def route(query):
        skip, limit = int(query.get("skip", ["0"])[0]), int(query["limit"][0])
        if skip + limit > 6:
            return as_json({"error": {"code": "BAD_REQUEST", "message": "Skip value must 25000 or less."}}, 400)
        return as_json(openfda_page([openfda_label(i) for i in range(skip, skip + limit)], skip, limit, total))

    server.routes["/drug/label.json"] = route
    store = CursorStore(tmp_path)
    connector = OpenFDAConnector(OpenFDASettings(base_url=server.url, page_size=4))
    run = run_connector(connector, FAST, max_documents=100, state=store)
    assert len(run.documents) == 6 and not run.exhausted
    assert run.stopped is not None and f"fetched 6 of {total} labels" in run.stopped
    assert run_summary(run)["stopped"] == run.stopped and run_summary(run)["total"] == total
    assert store.load("openfda") != {"done": True}
    requests = len(server.requests)
    again = run_connector(connector, FAST, max_documents=100, state=store)
    assert again.stopped and not again.exhausted and len(server.requests) == requests  # no request past the cap


def test_openfda_default_limits_are_the_documented_ones():
    from drugslm_core.data.connectors.openfda import MAX_LIMIT, MAX_SKIP

    assert (MAX_SKIP, MAX_LIMIT) == (25_000, 1000)
    with pytest.raises(ValidationError, match="page_size"):
        OpenFDASettings(page_size=1001)


def test_openfda_follows_search_after_links_past_the_skip_cap(server, tmp_path, monkeypatch):
    monkeypatch.setattr(openfda_module, "MAX_SKIP", 3)
    monkeypatch.setenv("OPENFDA_API_KEY", "secret-key-123")
    total = 7

    def route(query):
        assert "skip" not in query or query["skip"] == ["0"]  # search_after never goes with a non-zero skip
        limit = int(query["limit"][0])
        after = int(query["search_after"][0].split("=")[1]) + 1 if "search_after" in query else 0
        labels = [openfda_label(i) for i in range(after, min(after + limit, total))]
        last = after + len(labels) - 1
        link = (f'<{server.url}/drug/label.json?search=x&limit={limit}&skip=0&search_after=0%3D{last}'
                f'&api_key=secret-key-123>; rel="next"')
        return as_json(openfda_page(labels, 0, limit, total), headers={"Link": link} if after + limit < total else None)

    server.routes["/drug/label.json"] = route
    store = CursorStore(tmp_path)
    connector = OpenFDAConnector(OpenFDASettings(base_url=server.url, page_size=2, search="x"))
    run = run_connector(connector, FAST, max_documents=100, state=store)
    assert [d.id for d in run.documents] == [f"openfda:set-{i}" for i in range(7)]
    assert run.exhausted and run.stopped is None and run.pages == 4
    assert all(q["api_key"] == ["secret-key-123"] for _, q, _ in server.requests)  # the key from the environment
    staged_and_cursors = "".join(p.read_text() for p in tmp_path.rglob("*.json"))
    assert "secret-key-123" not in staged_and_cursors  # never written to the state folder
    assert run.payloads and all("secret-key-123" not in p.url and "api_key=%2A%2A%2A" in p.url for p in run.payloads)


def test_openfda_real_world_labels_names_and_repeated_headings(server):
    labels = [fixture_json(f"openfda/{name}.json") for name in
              ("label_empty_openfda", "label_otc_repeated_headings", "label_no_name")]
    server.routes["/drug/label.json"] = lambda q: as_json(openfda_page(labels, 0, 3, 3))
    run = run_connector(OpenFDAConnector(OpenFDASettings(base_url=server.url)), FAST, max_documents=10)
    empty, otc = run.documents
    assert (empty.title, empty.metadata["name_source"]) == ("Ibuprofen", "spl_product_data_elements")
    assert (otc.title, otc.metadata["name_source"]) == ("IBUPROFEN", "openfda.generic_name")
    sections = {s.name: s.text for s in otc.sections}
    assert sections["indications"] == (
        "temporarily relieves minor aches and pains due to: headache, toothache, backache\n\nPain reliever/fever reducer"
    )
    assert sections["dosage"].startswith("do not take more than directed adults")
    assert sections["contraindications"].startswith("Do not use if you have ever had")  # a sentence, kept whole
    assert sections["warnings"].startswith("Allergy alert: Ibuprofen may cause")
    assert {s.name: s.text for s in empty.sections}["indications"] == (
        "temporarily relieves minor aches and pains due to: headache muscular aches minor pain of arthritis toothache "
        "the common cold temporarily reduces fever\n\nPain reliever/fever reducer"
    )
    [unnamed] = run.quarantine
    assert unnamed.record.id == "openfda:9e8d7c6b-5a49-4382-a716-b5c4d3e2f1a0"
    assert unnamed.reasons[0].startswith("unnamed_label:") and "result 2" in unnamed.record.locator


def test_openfda_limit_over_1000_is_refused_before_any_request(server):
    server.routes["/drug/label.json"] = lambda q: as_json(fixture_json("openfda/error_limit.json"), 400)
    settings = OpenFDASettings.model_construct(**(OpenFDASettings(base_url=server.url).model_dump() | {"page_size": 5000}))
    with pytest.raises(ValueError, match="page_size=5000: openFDA allows 1..1000"):
        OpenFDAConnector(settings)
    assert server.requests == []


def test_pubmed_book_articles_medline_dates_and_missing_ids(server):
    ids = ["30085525", "9921604", "11111111"]  # the last: listed by esearch, not returned by efetch
    server.routes["/eutils/esearch.fcgi"] = lambda q: as_json(
        {"esearchresult": {"count": "3", "retmax": "3", "retstart": "0", "idlist": ids}}
    )
    xml = (FIXTURES / "pubmed/efetch_book_and_medlinedate.xml").read_bytes()
    server.routes["/eutils/efetch.fcgi"] = lambda q: (200, {"Content-Type": "text/xml"}, xml)
    settings = PubMedSettings(base_url=f"{server.url}/eutils", term="metformin", email="data@example.org")
    run = run_connector(PubMedConnector(settings), FAST, max_documents=10)
    book, article = run.documents
    assert book.id == "pubmed:30085525" and book.metadata["publication_type"] == "book"
    assert (book.metadata["journal"], book.metadata["year"], book.metadata["article_title"]) == ("StatPearls", "2024", "Metformin")
    assert book.sections[0].text.startswith("Metformin is a medication used to manage")
    assert article.metadata["year"] == "1998"  # <MedlineDate>1998 Dec-1999 Jan</MedlineDate>
    assert article.metadata["article_title"] == "Metformin and lactic acidosis: a review."
    [missing] = run.quarantine
    assert missing.record.id == "pubmed:11111111" and missing.reasons[0].startswith("missing_from_efetch")
    assert all(q["tool"] == ["drugslm"] and q["email"] == ["data@example.org"] for _, q, _ in server.requests)
    assert all(q.get("sort") == ["pub_date"] for p, q, _ in server.requests if p.endswith("esearch.fcgi"))


def test_pubmed_esearch_cap_stops_with_fetched_n_of_m(server, tmp_path, monkeypatch):
    monkeypatch.setattr(pubmed_module, "ESEARCH_MAX", 5)  # the real cap is 9,999 (asserted below)
    count = int(fixture_json("pubmed/esearch_over_cap.json")["esearchresult"]["count"])

    def esearch(query):
        start, size = int(query["retstart"][0]), int(query["retmax"][0])
        assert start + size <= 5, "retstart + retmax past the cap makes esearch answer an error"
        body = fixture_json("pubmed/esearch_over_cap.json")
        body["esearchresult"] |= {"retstart": str(start), "retmax": str(size),
                                  "idlist": [str(38000000 + i) for i in range(start, start + size)]}
        return as_json(body)

    server.routes["/eutils/esearch.fcgi"] = esearch
    server.routes["/eutils/efetch.fcgi"] = lambda q: (200, {"Content-Type": "text/xml"}, efetch_xml(q["id"][0].split(",")))
    store = CursorStore(tmp_path)
    connector = PubMedConnector(PubMedSettings(base_url=f"{server.url}/eutils", term="metformin", page_size=2,
                                               mindate="2020", maxdate="2021", split_by_date=False))
    run = run_connector(connector, FAST, max_documents=100, state=store)
    assert len(run.documents) == 5 and not run.exhausted
    assert run.stopped and f"fetched 5 of {count} PubMed ids" in run.stopped and "mindate/maxdate" in run.stopped
    assert store.load("pubmed") == {"retstart": 5, "count": count}
    searches = [q for p, q, _ in server.requests if p.endswith("esearch.fcgi")]
    assert all((q["datetype"], q["mindate"], q["maxdate"]) == (["pdat"], ["2020"], ["2021"]) for q in searches)
    before = len(server.requests)
    assert run_connector(connector, FAST, max_documents=100, state=store).stopped and len(server.requests) == before
    monkeypatch.undo()
    assert pubmed_module.ESEARCH_MAX == 9999


def test_pubmed_api_key_from_the_environment_raises_the_rate(server, monkeypatch):
    assert PubMedConnector(PubMedSettings(term="x")).requests_per_second(PubMedSettings().http) == 3.0
    monkeypatch.setenv("NCBI_API_KEY", "ncbi-key")
    connector = PubMedConnector(PubMedSettings(base_url=f"{server.url}/eutils", term="x"))
    assert connector.requests_per_second(PubMedSettings().http) == 10.0
    server.routes["/eutils/esearch.fcgi"] = lambda q: as_json({"esearchresult": {"count": "0", "idlist": []}})
    run_connector(connector, FAST, max_documents=5)
    assert server.requests[0][1]["api_key"] == ["ncbi-key"]


def test_arxiv_empty_page_is_asked_again_up_to_the_total(server):
    empty = (FIXTURES / "arxiv/empty_page.xml").read_bytes()
    served_empty = {"n": 0}

    def route(query):
        start, size = int(query["start"][0]), int(query["max_results"][0])
        if start == 2 and served_empty["n"] < 2:  # twice empty, then the entries
            served_empty["n"] += 1
            return 200, {"Content-Type": "application/atom+xml"}, empty
        return 200, {"Content-Type": "application/atom+xml"}, atom_feed(start, size, total=5)

    server.routes["/api/query"] = route
    connector = ArxivConnector(ArxivSettings(base_url=f"{server.url}/api/query", search_query="all:drug", page_size=2))
    run = run_connector(connector, FAST, max_documents=10)
    assert [d.id for d in run.documents] == [f"arxiv:2401.0000{i}v1" for i in range(5)]
    assert run.exhausted and server.hits("/api/query") == 5


def test_arxiv_page_that_stays_empty_is_not_the_end(server, tmp_path):
    empty = (FIXTURES / "arxiv/empty_page.xml").read_bytes()
    server.routes["/api/query"] = lambda q: (
        (200, {}, empty) if int(q["start"][0]) >= 2 else (200, {}, atom_feed(int(q["start"][0]), 2, total=5))
    )
    store = CursorStore(tmp_path)
    settings = ArxivSettings(base_url=f"{server.url}/api/query", search_query="all:drug", page_size=2, empty_page_retries=2)
    run = run_connector(ArxivConnector(settings), FAST, max_documents=10, state=store)
    assert len(run.documents) == 2 and not run.exhausted
    assert run.stopped and "fetched 2 of 5 arXiv results" in run.stopped
    assert store.load("arxiv") == {"start": 2}
    assert server.hits("/api/query") == 1 + 3  # first page, then the empty one asked 1 + 2 times


def test_anvisa_cloudflare_403_is_retried_with_browser_headers(server):
    block = (FIXTURES / "anvisa/cloudflare_403.html").read_bytes()
    statuses = iter([403, 429, 200])

    def bulario(query):
        status = next(statuses)
        if status != 200:
            return status, {"Content-Type": "text/html", "cf-ray": "8a1b2c3d4e5f6a7b-GRU"}, block
        return as_json({"content": [anvisa_item(0)], "totalPages": 1, "last": True})

    server.routes["/api/consulta/bulario"] = bulario
    settings = AnvisaSettings(base_url=f"{server.url}/api/consulta", product_names=["x"], leaflet="none")
    run = run_connector(AnvisaConnector(settings), FAST, max_documents=10)
    assert [d.id for d in run.documents] == ["anvisa:1.2345.0000"] and run.retries == 2
    headers = server.requests[0][2]
    assert headers["User-Agent"].startswith("Mozilla/5.0") and headers["Authorization"] == "Guest"
    assert headers["Referer"] == "https://consultas.anvisa.gov.br/" and "pt-BR" in headers["Accept-Language"]


def test_anvisa_still_blocked_is_reported_per_source_and_others_go_on(server, tmp_path):
    block = (FIXTURES / "anvisa/cloudflare_403.html").read_bytes()
    server.routes["/api/consulta/bulario"] = lambda q: (403, {"Content-Type": "text/html"}, block)
    server.routes["/drug/label.json"] = openfda_route(total=3)
    settings = ConnectorSettings(
        state_dir=tmp_path,
        openfda=OpenFDASettings(enabled=True, base_url=server.url, http=FAST),
        anvisa=AnvisaSettings(enabled=True, base_url=f"{server.url}/api/consulta", product_names=["x"], http=FAST),
    )
    openfda_run, anvisa_run = run_enabled_connectors(settings)
    assert len(openfda_run.documents) == 3 and openfda_run.error is None
    assert anvisa_run.source == "anvisa" and anvisa_run.documents == []
    assert anvisa_run.error and "HTTP 403 after 3 attempts" in anvisa_run.error
    assert server.hits("/api/consulta/bulario") == FAST.max_retries
    assert CursorStore(tmp_path).load("anvisa") is None  # nothing recorded as done


def test_anvisa_owner_password_leaflet_is_read(server):
    pdf = (FIXTURES / "anvisa/leaflet_owner_password.pdf").read_bytes()
    assert b"/Encrypt" in pdf
    server.routes["/api/consulta/bulario"] = lambda q: as_json({"content": [anvisa_item(0)], "totalPages": 1, "last": True})
    server.routes["/api/consulta/medicamentos/arquivo/bula/parecer/token-0/"] = (
        lambda q: (200, {"Content-Type": "application/pdf"}, pdf)
    )
    settings = AnvisaSettings(base_url=f"{server.url}/api/consulta", product_names=["exemplamina"])
    run = run_connector(AnvisaConnector(settings), FAST, max_documents=10)
    [leaflet] = run.documents
    assert leaflet.kind == "leaflet" and run.quarantine == []
    assert [s.name for s in leaflet.sections] == ["indications", "warnings", "storage", "dosage"]


def test_anvisa_leaflet_tokens_are_never_stored(server, tmp_path):
    server.routes["/api/consulta/bulario"] = lambda q: as_json({"content": [anvisa_item(0)], "totalPages": 1, "last": True})
    server.routes["/api/consulta/medicamentos/arquivo/bula/parecer/token-0/"] = (
        lambda q: (200, {"Content-Type": "application/pdf"}, make_pdf(PORTUGUESE_LEAFLET))
    )
    store = CursorStore(tmp_path)
    settings = AnvisaSettings(base_url=f"{server.url}/api/consulta", product_names=["exemplamina"])
    run_connector(AnvisaConnector(settings), FAST, max_documents=10, state=store)
    assert "token-0" not in (tmp_path / "anvisa.cursor.json").read_text()


def test_politeness_defaults_are_the_documented_limits():
    assert OpenFDASettings().http.requests_per_second * 60 == pytest.approx(240)  # 240/min without a key
    assert PubMedSettings().http.requests_per_second == 3.0 and PubMedSettings().requests_per_second_with_key == 10.0
    assert RateLimiter(ArxivSettings().http.requests_per_second).interval >= 3.0  # one request per 3 s
    assert (PubMedSettings().tool, PubMedSettings().api_key_env, OpenFDASettings().api_key_env) == (
        "drugslm", "NCBI_API_KEY", "OPENFDA_API_KEY"
    )
    for section in (OpenFDASettings, PubMedSettings):
        assert "api_key" not in section.model_fields  # keys come from the environment, never from config files


def test_killed_ingest_loses_no_page(server, tmp_path):
    """A real ingest process is killed (SIGKILL) while fetching page 3; the next ingest has all 10 labels."""
    page_three = threading.Event()
    release = threading.Event()

    def route(query):
        if int(query.get("skip", ["0"])[0]) >= 4 and not release.is_set():
            page_three.set()
            release.wait(timeout=30)
            return 503, {}, b"gone"
        return openfda_route(total=10)(query)

    server.routes["/drug/label.json"] = route
    settings = DataSettings(
        include_sample_corpus=False,
        connectors=ConnectorSettings(
            state_dir=tmp_path / "state", openfda=OpenFDASettings(enabled=True, base_url=server.url, page_size=2, http=FAST)
        ),
    )
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; from drugslm_core.config import DataSettings; from drugslm_core.data.ingest import ingest_sources; "
         "ingest_sources(DataSettings.model_validate_json(sys.argv[1]))", settings.model_dump_json()],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        assert page_three.wait(timeout=120), child.stderr.read().decode() if child.poll() is not None else "no page 3"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        release.set()
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    assert CursorStore(tmp_path / "state").load("openfda") == {"skip": 4}  # the cursor had moved past pages 1-2
    result = ingest_sources(settings)
    assert [d.id for d in result.documents.documents] == [f"openfda:set-{i}" for i in range(10)]
    records, _ = documents_to_records(result.documents.documents, ChunkingSettings())
    assert {r.focus for r in records} == {f"DRUGNAME{i}" for i in range(10)}
    [summary] = [s for s in result.sources if s.source == "openfda"]
    assert summary.replayed == 4 and summary.exhausted
    assert list((tmp_path / "state" / "staged").rglob("*.json")) == []  # acknowledged once ingest held them


def test_ingest_summary_carries_limits_errors_and_quarantine(server, tmp_path):
    """What the ingest step puts in its metadata (``sources``): fetched N of M, per-source errors, quarantine."""
    empty = (FIXTURES / "arxiv/empty_page.xml").read_bytes()
    server.routes["/api/query"] = lambda q: (
        (200, {}, empty) if int(q["start"][0]) >= 2 else (200, {}, atom_feed(int(q["start"][0]), 2, total=5))
    )
    server.routes["/eutils/esearch.fcgi"] = lambda q: (500, {}, b"Internal Server Error")
    server.routes["/api/consulta/bulario"] = lambda q: as_json({"content": [anvisa_item(0)], "totalPages": 1, "last": True})
    server.routes["/api/consulta/medicamentos/arquivo/bula/parecer/token-0/"] = lambda q: (404, {}, b"expired")
    settings = DataSettings(include_sample_corpus=False, connectors=ConnectorSettings(
        state_dir=tmp_path,
        pubmed=PubMedSettings(enabled=True, base_url=f"{server.url}/eutils", term="x", http=FAST),
        arxiv=ArxivSettings(enabled=True, base_url=f"{server.url}/api/query", search_query="all:drug", page_size=2,
                            empty_page_retries=1, http=FAST),
        anvisa=AnvisaSettings(enabled=True, base_url=f"{server.url}/api/consulta", product_names=["x"], http=FAST),
    ))
    result = ingest_sources(settings)
    by_source = {s.source: s for s in result.sources}
    assert by_source["pubmed"].error and "HTTP 500 after 3 attempts" in by_source["pubmed"].error
    assert by_source["arxiv"].stopped and "fetched 2 of 5" in by_source["arxiv"].stopped
    assert not by_source["arxiv"].exhausted and by_source["arxiv"].total == 5
    assert by_source["anvisa"].quarantined and "leaflet_unavailable" in by_source["anvisa"].quarantined[0]
    [unavailable] = [r for r in result.records.records if r.source == "anvisa"]
    assert unavailable.answer is None and "HTTP 404" in unavailable.rejected
    gate = apply_quality_gate(result.records, ValidationSettings(), upstream=Quarantine())
    [held] = [q for q in gate.quarantine.items if q.record.source == "anvisa"]  # in the quarantine artifact
    assert held.reasons[0].startswith("leaflet_unavailable:")  # the connector's reason is the gate's reason
    assert [d.id for d in result.documents.documents] == [
        "arxiv:2401.00000v1", "arxiv:2401.00001v1", "anvisa:1.2345.0000",
    ]


def test_pubmed_query_over_the_cap_is_split_into_date_windows(server, monkeypatch):
    """30 articles, a cap of 8 ids: the query is halved by publication date until each window fits; every id once."""
    import datetime as dt

    monkeypatch.setattr(pubmed_module, "ESEARCH_MAX", 8)
    articles = [(str(39000000 + i), dt.date(2020, 1, 1) + dt.timedelta(days=20 * i)) for i in range(30)]

    def in_window(query, day):
        if "mindate" not in query:
            return True
        return pubmed_module._parse_date(query["mindate"][0], False) <= day <= pubmed_module._parse_date(query["maxdate"][0], True)

    def esearch(query):
        start, size = int(query["retstart"][0]), int(query["retmax"][0])
        assert start + size <= 8
        hits = sorted((a for a in articles if in_window(query, a[1])), key=lambda a: a[1], reverse=True)  # pub_date
        return as_json({"esearchresult": {"count": str(len(hits)), "retstart": str(start), "retmax": str(size),
                                          "idlist": [pmid for pmid, _ in hits[start:start + size]]}})

    server.routes["/eutils/esearch.fcgi"] = esearch
    server.routes["/eutils/efetch.fcgi"] = lambda q: (200, {"Content-Type": "text/xml"}, efetch_xml(q["id"][0].split(",")))
    settings = PubMedSettings(base_url=f"{server.url}/eutils", term="metformin", page_size=5, mindate="2020", maxdate="2021")
    run = run_connector(PubMedConnector(settings), FAST.model_copy(update={"max_pages": 60}), max_documents=100)
    ids = [d.id for d in run.documents]
    assert sorted(ids) == sorted(f"pubmed:{pmid}" for pmid, _ in articles) and len(ids) == len(set(ids))
    assert run.exhausted and run.stopped is None and run.total == 30
    windows = {(q["mindate"][0], q["maxdate"][0]) for p, q, _ in server.requests if p.endswith("esearch.fcgi")}
    assert ("2020/01/01", "2020/12/31") in windows and ("2021/01/01", "2021/12/31") in windows


def test_pubmed_date_windows_parse_partial_dates():
    import datetime as dt

    parse = pubmed_module._parse_date
    assert (parse("2020", False), parse("2020", True)) == (dt.date(2020, 1, 1), dt.date(2020, 12, 31))
    assert (parse("2024/02", False), parse("2024/02", True)) == (dt.date(2024, 2, 1), dt.date(2024, 2, 29))
    assert parse("2023/12/05", True) == dt.date(2023, 12, 5) and parse(None, False) == dt.date(1800, 1, 1)
