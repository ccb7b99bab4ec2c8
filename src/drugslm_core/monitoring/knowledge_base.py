"""Knowledge-base drift: which leaflets are new, changed or removed since the champion's data,
and which benchmark questions ask about a section whose text changed.

A leaflet is the set of sections (drug, section name → text) the data layer produced for one
drug; its content hash is the sha256 of its sections in a fixed order, so the same text gives
the same hash whatever order the records came in. Chunked sections (``(part i of n)``) are
joined back in record order before hashing.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable

from pydantic import BaseModel, Field


class SectionText(BaseModel):
    drug: str
    section: str
    text: str


class LeafletSnapshot(BaseModel):
    """Content hashes of every leaflet and of each of its sections, keyed by the drug (lower case)."""

    leaflets: dict[str, str] = Field(default_factory=dict)
    sections: dict[str, dict[str, str]] = Field(default_factory=dict)
    names: dict[str, str] = Field(default_factory=dict)
    """Key → the drug name as written."""


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def snapshot(items: Iterable[SectionText]) -> LeafletSnapshot:
    texts: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    names: dict[str, str] = {}
    for item in items:
        key = item.drug.strip().lower()
        names.setdefault(key, item.drug.strip())
        texts[key][item.section or "unknown"].append(item.text)
    sections = {key: {name: _sha("\n".join(parts)) for name, parts in sorted(by.items())} for key, by in texts.items()}
    leaflets = {key: _sha("\n".join(f"{name}\0{digest}" for name, digest in by.items())) for key, by in sections.items()}
    return LeafletSnapshot(leaflets=leaflets, sections=sections, names=names)


class ChangedLeaflet(BaseModel):
    drug: str
    sections: list[str]
    """Sections added, removed or with other text."""


class AffectedQuestion(BaseModel):
    id: str
    drug: str
    section: str
    question: str


class KnowledgeBaseDrift(BaseModel):
    new: list[str] = Field(default_factory=list)
    changed: list[ChangedLeaflet] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    affected_questions: list[AffectedQuestion] = Field(default_factory=list)
    """Benchmark questions whose source section changed or disappeared: their reference answer may be stale."""
    reference_leaflets: int = 0
    current_leaflets: int = 0

    @property
    def changes(self) -> int:
        return len(self.new) + len(self.changed) + len(self.removed)

    def summary(self) -> str:
        if not self.changes:
            return f"knowledge base unchanged ({self.current_leaflets} leaflets)"
        parts = []
        if self.new:
            parts.append(f"{len(self.new)} new ({', '.join(self.new)})")
        if self.changed:
            parts.append(
                f"{len(self.changed)} changed ("
                + ", ".join(f"{c.drug}: {'/'.join(c.sections)}" for c in self.changed) + ")"
            )
        if self.removed:
            parts.append(f"{len(self.removed)} removed ({', '.join(self.removed)})")
        return "leaflets " + "; ".join(parts) + f"; {len(self.affected_questions)} benchmark questions affected"


def compare(
    reference: LeafletSnapshot, current: LeafletSnapshot, benchmark: Iterable[dict] = (), removed_means_gone: bool = True
) -> KnowledgeBaseDrift:
    """Leaflets new, changed (content hash) or removed in ``current`` against ``reference``.

    ``removed_means_gone=False`` is for a partial batch (only some leaflets re-sent): leaflets
    absent from it are not reported as removed.
    """
    drift = KnowledgeBaseDrift(reference_leaflets=len(reference.leaflets), current_leaflets=len(current.leaflets))
    changed_sections: dict[str, set[str]] = {}
    for key, digest in sorted(current.leaflets.items()):
        if key not in reference.leaflets:
            drift.new.append(current.names[key])
        elif digest != reference.leaflets[key]:
            before, after = reference.sections[key], current.sections[key]
            names = sorted(n for n in set(before) | set(after) if before.get(n) != after.get(n))
            drift.changed.append(ChangedLeaflet(drug=current.names[key], sections=names))
            changed_sections[key] = set(names)
    if removed_means_gone:
        for key in sorted(set(reference.leaflets) - set(current.leaflets)):
            drift.removed.append(reference.names[key])
            changed_sections[key] = set(reference.sections[key])
    for question in benchmark:
        key = str(question.get("drug", "")).strip().lower()
        section = str(question.get("section", ""))
        if section in changed_sections.get(key, set()):
            drift.affected_questions.append(
                AffectedQuestion(id=str(question.get("id", "")), drug=str(question.get("drug", "")), section=section,
                                 question=str(question.get("question", "")))
            )
    return drift
