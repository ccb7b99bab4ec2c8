"""Grouped train/eval split by focus (drugslm_core.data.splits)."""

from __future__ import annotations

import random

import pytest

from drugslm_core.data.formatting import InstructionDataset, InstructionExample
from drugslm_core.data.splits import split_by_focus


def make_example(id: str, focus: str) -> InstructionExample:
    question, answer = f"What is {focus} used for?", f"{focus} is used to treat pain."
    return InstructionExample(
        id=id, focus=focus, section=None, question=question, answer=answer,
        prompt=f"Q: {question}\nA: ", completion=answer,
    )

# 20 foci of varying sizes (1..20 examples); some foci are spelled in several ways.
FOCUS_SIZES = {f"Drug{i:02d}": size for i, size in enumerate([1, 2, 3, 5, 8, 13, 1, 4, 6, 9, 2, 7, 11, 3, 1, 10, 4, 2, 6, 20])}
SPELLINGS = {"Drug03": ["Drug03", "drug03", " DRUG03 "], "Drug12": ["Drug12", "dRuG12"]}


def norm(focus: str) -> str:
    return focus.strip().lower()


def build_dataset() -> InstructionDataset:
    examples = []
    for focus, size in FOCUS_SIZES.items():
        spellings = SPELLINGS.get(focus, [focus])
        for n in range(size):
            examples.append(make_example(id=f"{focus}-{n}", focus=spellings[n % len(spellings)]))
    return InstructionDataset(examples=examples, domain_tag="<|tag|>", base_model_sha256="abc")


DATASET = build_dataset()
TOTAL = len(DATASET)


def ids(dataset: InstructionDataset) -> list[str]:
    return [e.id for e in dataset.examples]


def test_dataset_shape():
    assert len({norm(e.focus) for e in DATASET.examples}) == 20
    assert TOTAL == sum(FOCUS_SIZES.values())


@pytest.mark.parametrize("seed", [0, 1, 13, 99])
def test_no_focus_on_both_sides(seed):
    train, evaluation = split_by_focus(DATASET, 0.2, seed)
    assert train.examples and evaluation.examples
    assert not {norm(e.focus) for e in train.examples} & {norm(e.focus) for e in evaluation.examples}


def test_variant_spellings_of_a_focus_stay_together():
    for seed in range(10):
        train, evaluation = split_by_focus(DATASET, 0.3, seed)
        for focus in SPELLINGS:
            sides = {("eval" if e in evaluation.examples else "train") for e in DATASET.examples if norm(e.focus) == norm(focus)}
            assert len(sides) == 1, (seed, focus)


@pytest.mark.parametrize("seed", [0, 13])
def test_union_equals_input(seed):
    train, evaluation = split_by_focus(DATASET, 0.15, seed)
    assert len(train) + len(evaluation) == TOTAL
    assert sorted(ids(train) + ids(evaluation)) == sorted(ids(DATASET))
    # each side keeps the input order
    assert ids(train) == [i for i in ids(DATASET) if i in set(ids(train))]
    assert ids(evaluation) == [i for i in ids(DATASET) if i in set(ids(evaluation))]


@pytest.mark.parametrize("fraction", [0.1, 0.15, 0.25, 0.5])
@pytest.mark.parametrize("seed", [0, 7, 13])
def test_eval_share_near_fraction(fraction, seed):
    _, evaluation = split_by_focus(DATASET, fraction, seed)
    share = len(evaluation) / TOTAL
    # whole foci are added until the target is reached: overshoot is below one focus
    assert share >= fraction
    assert share < fraction + max(FOCUS_SIZES.values()) / TOTAL


def test_metadata_carried_to_both_sides():
    train, evaluation = split_by_focus(DATASET, 0.2, 13)
    for side in (train, evaluation):
        assert (side.domain_tag, side.base_model_sha256) == ("<|tag|>", "abc")


def test_deterministic_for_a_seed():
    assert split_by_focus(DATASET, 0.2, 13) == split_by_focus(build_dataset(), 0.2, 13)


def test_independent_of_input_order():
    shuffled = list(DATASET.examples)
    random.Random(4).shuffle(shuffled)
    train, evaluation = split_by_focus(DATASET, 0.2, 13)
    train_s, evaluation_s = split_by_focus(InstructionDataset(examples=shuffled), 0.2, 13)
    assert set(ids(train)) == set(ids(train_s))
    assert set(ids(evaluation)) == set(ids(evaluation_s))


def test_different_seeds_give_different_splits():
    eval_sets = {frozenset(ids(split_by_focus(DATASET, 0.2, seed)[1])) for seed in range(6)}
    assert len(eval_sets) > 1


def test_train_never_empty_even_at_high_fraction():
    train, evaluation = split_by_focus(DATASET, 0.99, 13)
    assert len({norm(e.focus) for e in train.examples}) == 1
    assert len({norm(e.focus) for e in evaluation.examples}) == 19


def test_one_focus_is_an_error():
    single = InstructionDataset(
        examples=[make_example(id=str(i), focus=spelling) for i, spelling in enumerate(["Aspirin", "aspirin", " ASPIRIN"])]
    )
    with pytest.raises(ValueError, match="at least two distinct foci"):
        split_by_focus(single, 0.2, 13)


def test_empty_dataset_is_an_error():
    with pytest.raises(ValueError, match="at least two distinct foci"):
        split_by_focus(InstructionDataset(), 0.2, 13)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_eval_fraction_out_of_range(fraction):
    with pytest.raises(ValueError, match="eval_fraction must be in"):
        split_by_focus(DATASET, fraction, 13)


def test_three_way_split_keeps_eval_and_separates_drugs() -> None:
    from drugslm_core.config import SplitSettings
    from drugslm_core.data.splits import split_three_ways

    dataset, settings = build_dataset(), SplitSettings(eval_fraction=0.15, validation_fraction=0.1, seed=3)
    train, validation, evaluation = split_three_ways(dataset, settings)
    assert evaluation == split_by_focus(dataset, 0.15, 3)[1]  # the final evaluation set does not move
    assert len(train) + len(validation) + len(evaluation) == len(dataset)
    foci = [{norm(e.focus) for e in part.examples} for part in (train, validation, evaluation)]
    assert all(foci) and not (foci[0] & foci[1]) and not (foci[0] & foci[2]) and not (foci[1] & foci[2])
    assert validation.domain_tag == dataset.domain_tag

    train_all, empty, evaluation_again = split_three_ways(dataset, settings.model_copy(update={"validation_fraction": 0}))
    assert len(empty) == 0 and len(train_all) == len(train) + len(validation) and evaluation_again == evaluation
