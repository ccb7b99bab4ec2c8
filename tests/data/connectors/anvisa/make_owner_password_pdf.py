"""Writes leaflet_owner_password.pdf: the Portuguese test leaflet with an owner password only.

Run from the repository root: ``.venv/bin/python -m tests.data.connectors.anvisa.make_owner_password_pdf``.
Copy-protected ANVISA leaflets are like this: anyone may open them (empty user password), the
owner password only restricts copying/printing.
"""

from __future__ import annotations

import io
from pathlib import Path

from pypdf import PdfReader, PdfWriter

from tests.data.pdf_factory import PORTUGUESE_LEAFLET, make_pdf


def owner_password_pdf(user_password: str = "") -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf(PORTUGUESE_LEAFLET))))
    writer.encrypt(user_password=user_password, owner_password="anvisa-owner", permissions_flag=0b0100,
                   algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


if __name__ == "__main__":
    Path(__file__).with_name("leaflet_owner_password.pdf").write_bytes(owner_password_pdf())
