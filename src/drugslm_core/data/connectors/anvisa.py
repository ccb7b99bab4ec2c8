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

from typing import Annotated, Any

from pydantic import Field, StringConstraints

from drugslm_core.config import AnvisaSettings
from drugslm_core.data.connectors.base import (
    RETRYABLE_STATUS,
    Connector,
    ConnectorError,
    ConnectorResponse,
    Cursor,
    HttpFetcher,
    Page,
    parse_response,
)
from drugslm_core.data.connectors.pdf import pdf_leaflet_document
from drugslm_core.data.documents import Document, DocumentSection, RawPayload
from drugslm_core.data.records import QARecord, QuarantinedRecord
from drugslm_core.data.sources import SourceFormatError

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
"""Non-blank text, stripped."""


class Product(ConnectorResponse):
    """One ``content`` item of the ``bulario`` search (the API's camelCase names are the aliases)."""

    name: Text = Field(alias="nomeProduto")
    product_id: int | str | None = Field(None, alias="idProduto")
    registration: Text = Field(alias="numeroRegistro")
    holder: str | None = Field(None, alias="razaoSocial")
    expediente: str | None = None
    updated: str | None = Field(None, alias="dataAtualizacao")
    leaflet_paciente: str | None = Field(None, alias="idBulaPacienteProtegido")
    leaflet_profissional: str | None = Field(None, alias="idBulaProfissionalProtegido")

    def leaflet_token(self, leaflet: str) -> str | None:
        """The short-lived token of the ``paciente`` or ``profissional`` leaflet, when listed."""
        return {"paciente": self.leaflet_paciente, "profissional": self.leaflet_profissional}.get(leaflet)


class ProductPage(ConnectorResponse):
    """A Spring page of products; items are read one by one (:class:`Product`), so an error names its item."""

    content: list[Any]
    total_pages: int | None = Field(None, alias="totalPages")
    last: bool | None = None


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
        product = parse_response(Product, item, self.name, where)
        name, registration = product.name, product.registration
        metadata = {
            alias: str(value)
            for alias, value in product.model_dump(
                by_alias=True, include={"product_id", "registration", "holder", "expediente", "updated"}
            ).items()
            if value is not None
        }
        field = LEAFLET_FIELDS.get(self.settings.leaflet, "")
        leaflet_id = product.leaflet_token(self.settings.leaflet)
        if self.settings.leaflet != "none" and leaflet_id:
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
        holder = product.holder or "unknown holder"
        text = f"{name} tem registro ANVISA nº {registration}, detentor {holder}."
        if product.updated:
            text += f" Última atualização: {product.updated}."
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
        reply = parse_response(ProductPage, body, self.name, where)
        content = reply.content
        quarantine: list[QuarantinedRecord] = []
        documents = [
            self._document(http, item, f"{where} item {i}", payload_id, quarantine) for i, item in enumerate(content)
        ]
        last = reply.last
        if last is None:  # one of the two is enough; a rule across fields, so checked here, not in the model
            if reply.total_pages is None:
                raise ConnectorError(self.name, where, "neither 'last' nor 'totalPages' present", field="last")
            last = page >= reply.total_pages
        if content and not last:
            following: Cursor | None = {"name_index": index, "page": page + 1}
        elif index + 1 < len(self.settings.product_names):
            following = {"name_index": index + 1, "page": 1}
        else:
            following = None
        return Page(documents=documents, next_cursor=following, quarantine=quarantine)
