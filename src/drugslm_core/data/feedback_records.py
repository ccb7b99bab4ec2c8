"""The schema of exported feedback: one ``FeedbackRecord`` per served request (issue 16's export).

The data layer owns it so data-side code (candidate records, monitoring) can read an export
without importing serving. One JSON object a line in ``drugslm feedback export`` files.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict


class Citation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    chunk_id: str
    drug: str
    section: str
    source: str


class FeedbackRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")
    trace_id: str
    request_id: str
    created_at: datetime            # UTC
    model_version: str              # "drugslm-v3"
    question: str
    answer: str
    citations: list[Citation] = []  # Citation(BaseModel): chunk_id, drug, section, source (all str)
    rating: Literal["up", "down"] | None = None
    correction: str | None = None
    reason: Literal["wrong_dose", "wrong_drug", "missing_warning", "unclear", "other"] | None = None
    reviewer_role: Literal["pharmacist", "physician", "patient", "other"] | None = None
