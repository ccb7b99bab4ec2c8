"""The HTML pages: one Jinja environment and one stylesheet for every page the project shows.

The run report (ZenML dashboard ``HTMLString`` and MLflow ``report.html``), the gate and cleaning
pages and the artifact previews all extend ``templates/base.html.j2``, which inlines
``templates/base.css``: each page stays one self-contained HTML string (no external file, no CDN).

Everything a template prints is escaped unless it is markup the templates made themselves
(macros, includes). Values are escaped with the standard library's :func:`html.escape` (``'`` →
``&#x27;``, ``"`` → ``&quot;``), as the pages always were, rather than MarkupSafe's ``&#39;``.
Lowest layer (beside ``config``): data, quality and evaluation all render through it.
"""

from __future__ import annotations

from html import escape
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

STYLESHEET = "base.css"


def _escaped(value: Any) -> Any:
    """Every printed value, escaped; markup the templates built (``__html__``) passes as it is."""
    if hasattr(value, "__html__"):
        return value
    return Markup(escape(str(value)))


def _fmt(value: Any, spec: str) -> str:
    """``{{ x|fmt(".3f") }}``: Python's format mini-language (``+.3f``, ``,``, ``.1%``)."""
    return format(value, spec)


ENVIRONMENT = Environment(
    loader=PackageLoader("drugslm_core.pages", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    finalize=_escaped,
    trim_blocks=True,
    lstrip_blocks=True,
)
ENVIRONMENT.filters["fmt"] = _fmt


def render_page(template: str, **context: Any) -> str:
    """``templates/<template>`` rendered with ``context``: a whole page or a fragment of one."""
    return ENVIRONMENT.get_template(template).render(**context)


def stylesheet() -> str:
    """The shared CSS as every page inlines it."""
    return resources.files(__name__).joinpath("templates", STYLESHEET).read_text(encoding="utf-8").rstrip("\n")
