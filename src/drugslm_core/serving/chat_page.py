"""The chat page at ``/``: ask, watch the answer stream in with its model version, rate it.

A Jinja2 template plus one JS file and one CSS file, served by the app (no CDN, no build step;
``serving/web/``). The page itself needs no key; it asks for one and keeps it in the tab's
``sessionStorage`` (never in the page source), then calls ``/v1/chat/completions`` (SSE) and
``/v1/feedback`` with ``Authorization: Bearer``. A Content-Security-Policy allows only this
origin's own script and style.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

REASONS = (("wrong_dose", "Wrong dose"), ("wrong_drug", "Wrong drug"), ("missing_warning", "Missing warning"),
           ("unclear", "Unclear"), ("other", "Other"))
ROLES = (("pharmacist", "Pharmacist"), ("physician", "Physician"), ("patient", "Patient"), ("other", "Other"))
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@cache
def _asset(name: str) -> str:
    return (resources.files("drugslm_core.serving") / "web" / name).read_text(encoding="utf-8")


@cache
def render_page() -> str:
    from jinja2 import Environment, select_autoescape

    environment = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    return environment.from_string(_asset("chat.html")).render(reasons=REASONS, roles=ROLES)


def chat_page_router() -> APIRouter:
    router = APIRouter()

    @router.get("/", include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(render_page(), headers=SECURITY_HEADERS)

    @router.get("/static/chat.js", include_in_schema=False)
    def script() -> Response:
        return Response(_asset("chat.js"), media_type="text/javascript", headers=SECURITY_HEADERS)

    @router.get("/static/chat.css", include_in_schema=False)
    def style() -> Response:
        return Response(_asset("chat.css"), media_type="text/css", headers=SECURITY_HEADERS)

    return router
