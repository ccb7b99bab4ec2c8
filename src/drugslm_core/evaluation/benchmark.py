"""Benchmark sets: questions with reference answers and key facts, and per-model results.

The file format is the one of the autoimmune evaluation pipeline drugslm grew from:
a JSON object with ``questions`` (``id``, ``category``, ``difficulty``, ``question``;
here also ``drug``, ``section`` and ``key_facts``) and ``ground_truth`` (id to
reference answer). Results are rows with ``response``, ``time_seconds`` and
``timestamp`` plus our scores.

The bundled benchmark is a separate file that only evaluation reads; ingestion
never sees it, so its items cannot land in a training split. Its drugs are the
corpus's drugs (the facts are in the leaflets, which is what makes grounding
checkable), so a per-item ``held_out`` flag says whether the drug was in the
held-out eval split of this run.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, Field

from drugslm_core.data.formatting import InstructionDataset

BUNDLED_BENCHMARK = "drug_benchmark_v1.json"


class BenchmarkItem(BaseModel):
    id: str
    category: str
    difficulty: str
    question: str
    reference_answer: str
    key_facts: list[str] = Field(default_factory=list)
    drug: str | None = None
    section: str | None = None


class Benchmark(BaseModel):
    name: str
    version: str
    items: list[BenchmarkItem]

    def __len__(self) -> int:
        return len(self.items)

    @property
    def categories(self) -> list[str]:
        return list(dict.fromkeys(item.category for item in self.items))

    def subset(self, size: int | None) -> Benchmark:
        """The first ``size`` items taken round-robin across categories (deterministic), so a
        small subset still covers every category; ``None`` keeps every item."""
        if size is None or size >= len(self.items):
            return self
        by_category: dict[str, list[BenchmarkItem]] = {}
        for item in self.items:
            by_category.setdefault(item.category, []).append(item)
        chosen: list[BenchmarkItem] = []
        depth = 0
        while len(chosen) < size:
            for items in by_category.values():
                if depth < len(items) and len(chosen) < size:
                    chosen.append(items[depth])
            depth += 1
        return self.model_copy(update={"items": chosen})


class BenchmarkAnswer(BaseModel):
    """One model's answer to one benchmark item, in the autoimmune pipeline's result format."""

    id: str
    category: str
    difficulty: str
    question: str
    response: str
    time_seconds: float
    """Generation time of the batch the answer was in, divided by the batch size."""
    timestamp: str
    drug: str | None = None
    held_out: bool | None = None
    """Whether the item's drug was in this run's held-out eval split (``None``: unknown)."""
    item_set: str = "benchmark"
    """Which question set the item comes from: ``benchmark`` (the bundled or configured benchmark
    file) or ``heldout`` (questions of this run's held-out eval split, its answers as references)."""
    scores: dict[str, float] = Field(default_factory=dict)


def parse_benchmark(document: dict) -> Benchmark:
    """Build a :class:`Benchmark` from the JSON document (``questions`` + ``ground_truth``)."""
    truth = document.get("ground_truth") or {}
    items = []
    for question in document["questions"]:
        reference = question.get("reference_answer") or truth.get(question["id"])
        if not reference:
            raise ValueError(f"benchmark item {question['id']} has no reference answer in ground_truth")
        items.append(BenchmarkItem(**{**question, "reference_answer": reference}))
    ids = [item.id for item in items]
    if len(set(ids)) != len(ids):
        raise ValueError("benchmark ids must be unique")
    return Benchmark(name=document.get("name", "benchmark"), version=str(document.get("version", "1")), items=items)


HELDOUT = "heldout"
"""``item_set`` of questions taken from the run's own held-out eval split."""


def heldout_benchmark(eval_set: InstructionDataset, size: int | None) -> Benchmark:
    """Questions of the run's held-out eval split as a benchmark: the split's answers are the
    references (no key facts), its foci the drugs. So a user's own data is evaluated on its
    own questions, never seen in training. ``size`` items round-robin across sections."""
    items = [
        BenchmarkItem(
            id=example.id, category=example.section or "held-out", difficulty="held-out", question=example.question,
            reference_answer=example.answer, drug=example.focus, section=example.section,
        )
        for example in eval_set.examples
    ]
    return Benchmark(name="held-out eval split", version=eval_set.fingerprint()[:12], items=items).subset(size)


def load_benchmark(path: Path | None = None) -> Benchmark:
    """The benchmark at ``path``, or the bundled leaflet benchmark."""
    if path is None:
        text = resources.files("drugslm_core.data.benchmark").joinpath(BUNDLED_BENCHMARK).read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    return parse_benchmark(json.loads(text))
