"""PDF leaflets: text extraction (pypdf) and section detection."""

from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path

from drugslm_core.data.documents import Document
from drugslm_core.data.sections import split_sections
from drugslm_core.data.sources import SourceFormatError

logger = logging.getLogger(__name__)


def extract_pdf_pages(data: bytes, where: str) -> list[str]:
    """The text of each page; :class:`SourceFormatError` naming ``where`` when the PDF cannot be read."""
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    if not data.lstrip()[:5].startswith(b"%PDF"):
        raise SourceFormatError(where, "not a PDF (no %PDF header)")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            # Copy-protected leaflets carry only an owner password (printing/copying limits):
            # the empty user password opens them for reading, as any PDF viewer does.
            if not reader.decrypt(""):
                raise SourceFormatError(where, "PDF needs a user password to open; it cannot be read")
        return [page.extract_text() or "" for page in reader.pages]
    except SourceFormatError:
        raise
    # pypdf raises NotImplementedError for encryption algorithms and stream filters it lacks:
    # that leaflet is unreadable here (quarantined by the caller), not a defect of ours.
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, OSError, NotImplementedError) as error:
        raise SourceFormatError(where, f"not a readable PDF ({type(error).__name__}: {error})") from error


def _title_line(text: str) -> str | None:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:120]
    return None


def pdf_leaflet_document(
    data: bytes, where: str, source: str, drug: str | None = None, language: str = "en",
    url: str | None = None, metadata: dict[str, str] | None = None, document_id: str | None = None,
) -> Document:
    """One leaflet: its sections cut at the headings; the first line is the title unless ``drug`` is given.

    A PDF with no extractable text (a scan) gives a document without sections; it still
    becomes a record, which the quality gate quarantines, so it is visible, not lost.
    """
    pages = extract_pdf_pages(data, where)
    text = "\n".join(pages)
    title = drug or _title_line(text) or Path(where).stem
    sections = split_sections(text)
    if sections and sections[0].name == "overview" and sections[0].text.strip() == title:
        sections = sections[1:]  # the overview was only the title line
    if not sections:
        logger.warning("%s: no extractable text in %d page(s)", where, len(pages))
    digest = hashlib.sha256(data).hexdigest()
    return Document(
        id=document_id or f"pdf:{digest[:16]}",
        title=title, source=source, locator=f"{len(pages)} page(s)", kind="leaflet",
        language=language,  # type: ignore[arg-type]
        url=url, sections=sections,
        metadata={"sha256": digest, "pages": str(len(pages)), **(metadata or {})},
    )


def read_pdf_leaflet(path: Path, drug: str | None = None, language: str = "en") -> Document:
    if not path.is_file():
        raise SourceFormatError(path, "file not found")
    data = path.read_bytes()
    if not data.strip():
        raise SourceFormatError(path, "file is empty")
    return pdf_leaflet_document(data, str(path), str(path), drug=drug, language=language)
