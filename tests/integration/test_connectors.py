"""Source connectors against a local HTTP server on 127.0.0.1 (started here, bounded).

The payloads follow the public APIs' response shapes (openFDA label, NCBI E-utilities
esearch JSON + efetch XML, arXiv Atom, ANVISA's bulario JSON + leaflet PDF); they were
written from the APIs' documentation as known to the author, not captured from the
live services (no network here).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from drugslm_core.config import (
    AnvisaSettings,
    ArxivSettings,
    ConnectorSettings,
    HttpSettings,
    OpenFDASettings,
    PubMedSettings,
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
)
from drugslm_core.data.connectors.anvisa import AnvisaConnector
from drugslm_core.data.connectors.arxiv import ArxivConnector
from drugslm_core.data.connectors.openfda import OpenFDAConnector
from drugslm_core.data.connectors.pubmed import PubMedConnector
from drugslm_core.data.documents import RawPayload
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
    assert record.answer is None and "unreadable_leaflet" in record.locator


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
