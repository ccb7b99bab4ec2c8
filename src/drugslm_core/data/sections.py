"""Leaflet and label sections: canonical names, heading detection (English and Portuguese).

The canonical names follow the bundled corpus and MedQuAD's question types
(indications, dosage, side effects, contraindications, interactions, storage…).
Brazilian patient leaflets (ANVISA bulas) use fixed question headings
(``1. PARA QUE ESTE MEDICAMENTO É INDICADO?``), which map to the same names.
"""

from __future__ import annotations

import re
import unicodedata

from drugslm_core.data.documents import DocumentSection

CANONICAL_SECTIONS = (
    "indications", "mechanism", "dosage", "contraindications", "warnings", "adverse_reactions",
    "interactions", "storage", "overdose", "pregnancy", "missed_dose", "composition",
)

# Normalised heading (lowercase, no accents, no numbering or punctuation) -> canonical section.
HEADING_ALIASES: dict[str, str] = {
    # English (US labels, leaflets, openFDA field names with '_' as ' ')
    "indications and usage": "indications", "indications": "indications", "uses": "indications",
    "use": "indications", "purpose": "indications", "what is this medicine used for": "indications",
    "what is it used for": "indications",
    "mechanism of action": "mechanism", "mechanism": "mechanism", "clinical pharmacology": "mechanism",
    "how does it work": "mechanism", "how it works": "mechanism",
    "dosage and administration": "dosage", "dosage": "dosage", "dose": "dosage", "directions": "dosage",
    "how to take": "dosage", "how should i take this medicine": "dosage", "posology": "dosage",
    "contraindications": "contraindications", "do not use": "contraindications",
    "who should not take this medicine": "contraindications",
    "warnings and precautions": "warnings", "warnings and cautions": "warnings", "warnings": "warnings",
    "precautions": "warnings", "boxed warning": "warnings", "ask doctor": "warnings", "stop use": "warnings",
    "adverse reactions": "adverse_reactions", "side effects": "adverse_reactions",
    "possible side effects": "adverse_reactions", "undesirable effects": "adverse_reactions",
    "drug interactions": "interactions", "interactions": "interactions",
    "storage and handling": "storage", "storage": "storage", "how to store": "storage",
    "how supplied storage and handling": "storage", "how should i store this medicine": "storage",
    "overdosage": "overdose", "overdose": "overdose", "pregnancy": "pregnancy",
    "use in specific populations": "pregnancy", "if you miss a dose": "missed_dose", "missed dose": "missed_dose",
    "composition": "composition", "ingredients": "composition", "active ingredient": "composition",
    # Portuguese (ANVISA patient and professional leaflets)
    "para que este medicamento e indicado": "indications", "indicacoes": "indications",
    "como este medicamento funciona": "mechanism", "caracteristicas farmacologicas": "mechanism",
    "quando nao devo usar este medicamento": "contraindications", "contraindicacoes": "contraindications",
    "o que devo saber antes de usar este medicamento": "warnings", "advertencias e precaucoes": "warnings",
    "onde como e por quanto tempo posso guardar este medicamento": "storage",
    "cuidados de armazenamento do medicamento": "storage",
    "como devo usar este medicamento": "dosage", "posologia e modo de usar": "dosage", "posologia": "dosage",
    "o que devo fazer quando eu me esquecer de usar este medicamento": "missed_dose",
    "quais os males que este medicamento pode me causar": "adverse_reactions", "reacoes adversas": "adverse_reactions",
    "o que fazer se alguem usar uma quantidade maior do que a indicada deste medicamento": "overdose",
    "superdose": "overdose", "interacoes medicamentosas": "interactions", "composicao": "composition",
}

_NUMBERING = re.compile(r"^\s*(?:\d+(?:\.\d+)*\.?|[IVX]+\.)\s*")


def normalise_heading(heading: str) -> str:
    text = unicodedata.normalize("NFKD", heading)
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = _NUMBERING.sub("", text.replace("_", " ").lower())
    text = re.sub(r"[^a-z0-9 ]+", " ", text)
    return " ".join(text.split())


def canonical_section(heading: str) -> str | None:
    """The canonical section a heading names, or ``None`` when it is not a known heading."""
    return HEADING_ALIASES.get(normalise_heading(heading))


def slug(text: str) -> str:
    return normalise_heading(text).replace(" ", "_")[:60] or "section"


def looks_like_heading(line: str) -> bool:
    """A known heading, or a short all-caps line with letters (``DOSAGE FORMS AND STRENGTHS``)."""
    stripped = line.strip()
    if not stripped or len(stripped) > 120:
        return False
    if canonical_section(stripped):
        return True
    letters = [c for c in stripped if c.isalpha()]
    return (
        len(letters) >= 4 and all(c.isupper() for c in letters) and len(stripped.split()) <= 12
        and not stripped.endswith((",", ";"))
    )


def _join_lines(lines: list[str]) -> str:
    """Re-flow wrapped lines: de-hyphenate ``medi-`` + ``cine``, keep blank lines as paragraph breaks."""
    out: list[str] = []
    for line in lines:
        line = line.strip()
        if not line:
            if out and out[-1] != "\n\n":
                out.append("\n\n")
            continue
        if out and out[-1].endswith("-") and line[:1].islower():
            out[-1] = out[-1][:-1] + line
        elif out and out[-1] != "\n\n":
            out[-1] = out[-1] + " " + line
        else:
            out.append(line)
    return "".join(out).strip()


def split_sections(text: str, untitled: str = "overview") -> list[DocumentSection]:
    """Cut extracted text at its headings; text before the first heading is the ``untitled`` section."""
    sections: list[tuple[str, list[str]]] = [("", [])]
    for line in text.splitlines():
        if looks_like_heading(line):
            sections.append((line.strip(), []))
        else:
            sections[-1][1].append(line)
    result = []
    for heading, lines in sections:
        body = _join_lines(lines)
        if not body:
            continue
        name = canonical_section(heading) if heading else untitled
        result.append(DocumentSection(name=name or slug(heading), heading=heading or untitled, text=body))
    return result
