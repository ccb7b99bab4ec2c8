"""Train/eval split by focus (drug or topic), so no focus is on both sides."""

from __future__ import annotations

import hashlib

from drugslm_core.config import SplitSettings
from drugslm_core.data.formatting import InstructionDataset


def _rank(focus: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}:{focus.strip().lower()}".encode()).hexdigest()


def split_by_focus(
    dataset: InstructionDataset, eval_fraction: float, seed: int
) -> tuple[InstructionDataset, InstructionDataset]:
    """Deterministic grouped split: whole foci go to eval until it holds ``eval_fraction`` of examples.

    Foci are ordered by a seeded hash, so the split is stable across runs and
    machines and independent of input order.
    """
    if not 0.0 < eval_fraction < 1.0:
        raise ValueError(f"split.eval_fraction must be in (0, 1), got {eval_fraction}")
    sizes: dict[str, int] = {}
    for example in dataset.examples:
        key = example.focus.strip().lower()
        sizes[key] = sizes.get(key, 0) + 1
    if len(sizes) < 2:
        raise ValueError(f"need at least two distinct foci to split, found {list(sizes)}")
    target = eval_fraction * len(dataset)
    eval_foci: set[str] = set()
    taken = 0
    for focus in sorted(sizes, key=lambda f: _rank(f, seed)):
        if taken >= target or len(eval_foci) == len(sizes) - 1:
            break
        eval_foci.add(focus)
        taken += sizes[focus]
    train = [e for e in dataset.examples if e.focus.strip().lower() not in eval_foci]
    evaluation = [e for e in dataset.examples if e.focus.strip().lower() in eval_foci]
    meta = {
        "domain_tag": dataset.domain_tag,
        "system_prompt": dataset.system_prompt,
        "base_model_sha256": dataset.base_model_sha256,
    }
    return InstructionDataset(examples=train, **meta), InstructionDataset(examples=evaluation, **meta)


def split_three_ways(
    dataset: InstructionDataset, settings: SplitSettings
) -> tuple[InstructionDataset, InstructionDataset, InstructionDataset]:
    """Train / validation / eval, grouped by focus. Eval is exactly ``split_by_focus``'s; validation
    (for eval loss while training) is carved the same way from what is left, or empty when
    ``validation_fraction`` is 0."""
    rest, evaluation = split_by_focus(dataset, settings.eval_fraction, settings.seed)
    if settings.validation_fraction == 0:
        return rest, rest.model_copy(update={"examples": []}), evaluation
    train, validation = split_by_focus(rest, settings.validation_fraction, settings.seed)
    return train, validation, evaluation
