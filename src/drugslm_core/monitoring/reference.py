"""What the monitoring compares: the champion's training data and the current batch, as questions
and leaflet snapshots (plain data; the ZenML lineage lookup lives in ``steps/monitoring.py``)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from drugslm_core.data.formatting import InstructionDataset
from drugslm_core.data.records import RecordBatch
from drugslm_core.monitoring.knowledge_base import LeafletSnapshot, SectionText, snapshot


class MonitoringData(BaseModel):
    """Questions, (question, answer) pair keys and leaflets of one side of the comparison."""

    label: str
    """``champion v3 (run <id>)`` or ``current batch``."""
    questions: list[str] = Field(default_factory=list)
    pairs: list[str] = Field(default_factory=list)
    leaflets: LeafletSnapshot = Field(default_factory=LeafletSnapshot)
    drugs: list[str] = Field(default_factory=list)


def _pair(question: str, answer: str) -> str:
    return question.strip() + "\0" + answer.strip()


def from_dataset(dataset: InstructionDataset, label: str) -> MonitoringData:
    examples = dataset.examples
    return MonitoringData(
        label=label,
        questions=[e.question for e in examples],
        pairs=[_pair(e.question, e.answer) for e in examples],
        leaflets=snapshot(SectionText(drug=e.focus, section=e.section or "unknown", text=e.answer) for e in examples),
        drugs=sorted({e.focus for e in examples}),
    )


def from_records(batch: RecordBatch, label: str) -> MonitoringData:
    records = [r for r in batch.records if r.question and r.answer]
    return MonitoringData(
        label=label,
        questions=[r.question or "" for r in records],
        pairs=[_pair(r.question or "", r.answer or "") for r in records],
        leaflets=snapshot(SectionText(drug=r.focus, section=r.section or "unknown", text=r.answer or "") for r in records),
        drugs=sorted({r.focus for r in records}),
    )


def new_pairs(reference: MonitoringData, current: MonitoringData) -> int:
    """Current (question, answer) pairs the champion was not trained on."""
    seen = set(reference.pairs)
    return sum(1 for pair in set(current.pairs) if pair not in seen)
