"""Drug leaflets bundled with the package, turned into question/answer records.

``leaflets.yaml`` holds 40 leaflets written in the project's own words (see the
README beside it). Each section becomes one question in the MedQuAD style.
"""

from __future__ import annotations

from importlib import resources

import yaml

from drugslm_core.data.questions import QUESTION_TEMPLATES as _TEMPLATES_BY_LANGUAGE
from drugslm_core.data.records import QARecord

SOURCE_NAME = "sample-corpus"

QUESTION_TEMPLATES: dict[str, str] = _TEMPLATES_BY_LANGUAGE["en"]
"""Section → question, shared with documents from connectors and PDFs (``data.questions``)."""


def load_leaflets() -> list[dict]:
    text = resources.files(__package__).joinpath("leaflets.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def slug(name: str) -> str:
    return "-".join(name.lower().replace("(", " ").replace(")", " ").split())


def leaflet_records() -> list[QARecord]:
    """One record per leaflet section, with a question from :data:`QUESTION_TEMPLATES`."""
    records = []
    for index, leaflet in enumerate(load_leaflets()):
        drug = leaflet["drug"]
        for section, text in leaflet["sections"].items():
            template = QUESTION_TEMPLATES.get(section, QUESTION_TEMPLATES["other"])
            records.append(
                QARecord(
                    id=f"{SOURCE_NAME}:{slug(drug)}:{section}",
                    question=template.format(drug=drug, heading=section.replace("_", " ")),
                    answer=" ".join(str(text).split()),
                    focus=drug,
                    source=SOURCE_NAME,
                    locator=f"leaflet {index} ({drug}), section {section}",
                    section=section,
                )
            )
    return records
