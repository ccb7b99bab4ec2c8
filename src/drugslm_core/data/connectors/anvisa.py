"""ANVISA (Brazil's regulator): the medicine registry search and the leaflets (bulas) it links.

Written from the shape the public site's JSON API returns (``consultas.anvisa.gov.br``; it
is undocumented, so this follows what its web client requests):
``GET {base}/bulario?count=N&page=P&filter[nomeProduto]=NAME`` with the header
``Authorization: Guest`` → a Spring page ``{"content": [{"idProduto", "nomeProduto",
"numeroRegistro", "razaoSocial", "expediente", "dataAtualizacao",
"idBulaPacienteProtegido", "idBulaProfissionalProtegido"}], "totalPages", "totalElements",
"number", "last"}``; a leaflet PDF is
``GET {base}/medicamentos/arquivo/bula/parecer/{idBula…Protegido}/?Authorization=Guest``.
Pages are 1-based in the request. The cursor walks the configured product names in order.

The site sits behind Cloudflare: requests carry browser-like headers (as the working
community clients do), and 403/429 answers are retried with backoff (``http.max_retries``,
``http.backoff_s``); a source still blocked after that is reported as failed in its run,
and the other sources go on. The ``idBula…Protegido`` values are short-lived tokens
(about 300 s): they are used at once, never stored in the cursor or re-used on resume.
Leaflets protected with an owner password only are read (opened with the empty user
password). A leaflet that cannot be read (not a PDF, needs a user password, expired
token) is quarantined with its reason; the product's registry entry is still kept.
"""

from __future__ import annotations

from typing import Any

from drugslm_core.config import AnvisaSettings
from drugslm_core.data.connectors.base import RETRYABLE_STATUS, Connector, ConnectorError, Cursor, HttpFetcher, Page
from drugslm_core.data.connectors.pdf import pdf_leaflet_document
from drugslm_core.data.documents import Document, DocumentSection, RawPayload
from drugslm_core.data.records import QARecord, QuarantinedRecord
from drugslm_core.data.sources import SourceFormatError

LEAFLET_FIELDS = {"paciente": "idBulaPacienteProtegido", "profissional": "idBulaProfissionalProtegido"}
BROWSER_HEADERS = {
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Accept": "application/json, text/plain, */*",
    "Accept-Language": "pt-BR,pt;q=0.9,en;q=0.5",
    "Referer": "https://consultas.anvisa.gov.br/",
    "Authorization": "Guest",
}


class AnvisaConnector(Connector):
    name = "anvisa"
    retry_statuses = RETRYABLE_STATUS | {403}  # Cloudflare blocks pass; retried with backoff, then reported

    def __init__(self, settings: AnvisaSettings):
        if not settings.product_names:
            raise ValueError("data.connectors.anvisa.product_names is empty: list the medicines to look up")
        self.settings = settings

    def headers(self) -> dict[str, str]:
        return dict(BROWSER_HEADERS)

    def initial_cursor(self) -> Cursor:
        return {"name_index": 0, "page": 1}

    def _document(
        self, http: HttpFetcher, item: Any, where: str, payload_id: str, quarantine: list[QuarantinedRecord]
    ) -> Document:
        if not isinstance(item, dict):
            raise ConnectorError(self.name, where, f"expected an object, got {type(item).__name__}")
        for field in ("nomeProduto", "numeroRegistro"):
            if not isinstance(item.get(field), str) or not item[field].strip():
                raise ConnectorError(self.name, where, "missing or empty", field=field)
        name, registration = item["nomeProduto"].strip(), item["numeroRegistro"].strip()
        metadata = {
            k: str(item[k]) for k in ("idProduto", "numeroRegistro", "razaoSocial", "expediente", "dataAtualizacao")
            if item.get(k) is not None
        }
        field = LEAFLET_FIELDS.get(self.settings.leaflet, "")
        leaflet_id = item.get(field)
        if self.settings.leaflet != "none" and isinstance(leaflet_id, str) and leaflet_id:
            url = f"{self.settings.base_url.rstrip('/')}/medicamentos/arquivo/bula/parecer/{leaflet_id}/"
            document_id = f"anvisa:{registration}:{self.settings.leaflet}"
            try:
                response = http.get(url, {"Authorization": "Guest"})
                document = pdf_leaflet_document(
                    response.content, f"{url} ({where})", self.name, drug=name, language="pt", url=url,
                    metadata={**metadata, "leaflet": self.settings.leaflet},
                    document_id=document_id,
                )
            except ConnectorError as error:
                if error.status in self.retry_statuses or error.status is None:
                    raise  # blocked or unreachable after the retries: the source fails, reported per source
                reason = f"leaflet_unavailable: {error}"
            except SourceFormatError as error:
                reason = f"unreadable_leaflet: {error}"
            else:
                document.locator = where
                document.payload_ids = [payload_id, RawPayload.digest(response.content)]
                return document
            quarantine.append(QuarantinedRecord(
                record=QARecord(id=document_id, question=None, answer=None, focus=name, source=self.name,
                                locator=f"{where}, field {field}"),
                reasons=[reason],
            ))
        holder = item.get("razaoSocial") or "unknown holder"
        text = f"{name} tem registro ANVISA nº {registration}, detentor {holder}."
        if item.get("dataAtualizacao"):
            text += f" Última atualização: {item['dataAtualizacao']}."
        return Document(
            id=f"anvisa:{registration}", title=name, source=self.name, locator=where, kind="registry",
            language="pt", sections=[DocumentSection(name="registration", heading="Registro", text=text)],
            metadata=metadata, payload_ids=[payload_id],
        )

    def fetch_page(self, http: HttpFetcher, cursor: Cursor, want: int) -> Page:
        index, page = int(cursor.get("name_index", 0)), int(cursor.get("page", 1))
        if index >= len(self.settings.product_names):
            return Page(documents=[], next_cursor=None)
        product = self.settings.product_names[index]
        size = max(1, min(self.settings.page_size, want))
        url = f"{self.settings.base_url.rstrip('/')}/bulario"
        body, payload_id = http.get_json(url, {"count": size, "page": page, "filter[nomeProduto]": product})
        where = f"{url} nomeProduto={product!r} page={page}"
        if not isinstance(body, dict):
            raise ConnectorError(self.name, where, "expected a JSON object")
        content = body.get("content")
        if not isinstance(content, list):
            raise ConnectorError(self.name, where, "missing or not a list", field="content")
        quarantine: list[QuarantinedRecord] = []
        documents = [
            self._document(http, item, f"{where} item {i}", payload_id, quarantine) for i, item in enumerate(content)
        ]
        total_pages = body.get("totalPages")
        last = body.get("last")
        if not isinstance(last, bool):
            if not isinstance(total_pages, int):
                raise ConnectorError(self.name, where, "neither 'last' nor 'totalPages' present", field="last")
            last = page >= total_pages
        if content and not last:
            following: Cursor | None = {"name_index": index, "page": page + 1}
        elif index + 1 < len(self.settings.product_names):
            following = {"name_index": index + 1, "page": 1}
        else:
            following = None
        return Page(documents=documents, next_cursor=following, quarantine=quarantine)
