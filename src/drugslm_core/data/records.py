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


class RecordBatch(BaseModel):
    """An ordered batch of records with per-source counts."""

    records: list[QARecord] = Field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)

    def counts_by_source(self) -> dict[str, int]:
        return dict(Counter(record.source for record in self.records))

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for record in self.records:
            digest.update(json.dumps(record.model_dump(), sort_keys=True).encode())
        return digest.hexdigest()


class QuarantinedRecord(BaseModel):
    record: QARecord
    reasons: list[str]


class Quarantine(BaseModel):
    """Records the quality gate rejected, each with every reason it failed."""

    items: list[QuarantinedRecord] = Field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items)

    def reason_counts(self) -> dict[str, int]:
        return dict(Counter(reason.split(":")[0] for item in self.items for reason in item.reasons))
