"""Record types that flow from ingestion to training."""

from __future__ import annotations

import hashlib
import json
from collections import Counter

from pydantic import BaseModel, Field


class QARecord(BaseModel):
    """One question/answer pair as read from a source, before validation.

    ``question`` and ``answer`` may be missing or empty here: the quality gate
    decides, and quarantines with a reason, instead of ingestion dropping them.
    """

    id: str | None
    question: str | None
    answer: str | None
    focus: str
    """The drug or topic the pair is about; the split keeps each focus on one side."""
    source: str
    """File the record came from (``sample-corpus`` for the bundled leaflets)."""
    locator: str
    """Where in the source: ``record 3``, ``line 12``, ``row 7``, ``QAPair qid=…``."""
    section: str | None = None
    """Question type / leaflet section (indication, dosage, …) when known."""
    rejected: str | None = None
    """Set by the reader when the row itself is unusable (``unparsable_row: …``, ``ragged_row: …``,
    ``wrong_type: …``): the record is still counted, and the quality gate quarantines it with this reason."""
    raw: str | None = None
    """The source text of a row the reader could not map to fields (for the quarantine view; PII scrubbed by clean)."""
    provenance: dict[str, str] | None = None
    """Where a record made from served feedback comes from (``kind``, ``trace_id``, ``reviewer_role``,
    ``model_version``, …; see ``data/feedback_candidates.py``); ``None`` for file and corpus records."""


class SourceCount(BaseModel):
    """What one question/answer file holds, counted by its reader while reading it."""

    source: str
    format: str
    held: int
    """Units in the file (data rows, non-blank lines, QA pair elements, list items): each one becomes
    exactly one record, accepted or quarantined."""
    unit: str
    note: str = ""
    """How it was read: detected encoding, delimiter, record lists, …"""


class FileTally(BaseModel):
    """Per file: held in the file = accepted + quarantined (set by the quality gate)."""

    source: str
    held: int
    accepted: int
    quarantined: int


class RecordBatch(BaseModel):
    """An ordered batch of records with per-source counts."""

    records: list[QARecord] = Field(default_factory=list)
    files: list[SourceCount] = Field(default_factory=list)
    """Per question/answer file: how many units it holds (empty for batches not read from files)."""

    def __len__(self) -> int:
        return len(self.records)

    def counts_by_source(self) -> dict[str, int]:
        return dict(Counter(record.source for record in self.records))

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for record in self.records:
            # Records without provenance hash as before the field existed (same fingerprints, same run keys).
            fields = record.model_dump(exclude={"provenance"} if record.provenance is None else None)
            digest.update(json.dumps(fields, sort_keys=True).encode())
        return digest.hexdigest()


class QuarantinedRecord(BaseModel):
    record: QARecord
    reasons: list[str]


class Quarantine(BaseModel):
    """Records the quality gate rejected, each with every reason it failed."""

    items: list[QuarantinedRecord] = Field(default_factory=list)
    per_file: list[FileTally] = Field(default_factory=list)
    """Per question/answer file: held = accepted + quarantined (filled by the quality gate)."""

    def __len__(self) -> int:
        return len(self.items)

    def reason_counts(self) -> dict[str, int]:
        return dict(Counter(reason.split(":")[0] for item in self.items for reason in item.reasons))
