"""The drug leaflets bundled with the package (drugslm_core.data.sample_corpus)."""

from __future__ import annotations

from collections import Counter

import pytest

from drugslm_core.data.sample_corpus import (
    QUESTION_TEMPLATES,
    SOURCE_NAME,
    leaflet_records,
    load_leaflets,
    slug,
)

REQUIRED_SECTIONS = {"indications", "dosage", "contraindications", "adverse_reactions", "interactions", "storage"}


@pytest.fixture(scope="module")
def leaflets() -> list[dict]:
    return load_leaflets()


@pytest.fixture(scope="module")
def records():
    return leaflet_records()


def test_at_least_thirty_distinct_drugs(leaflets):
    drugs = [leaflet["drug"] for leaflet in leaflets]
    assert len(drugs) >= 30
    assert len({d.strip().lower() for d in drugs}) == len(drugs), "a drug appears twice"


def test_every_leaflet_has_the_required_sections(leaflets):
    missing = {
        leaflet["drug"]: sorted(REQUIRED_SECTIONS - set(leaflet["sections"]))
        for leaflet in leaflets
        if not REQUIRED_SECTIONS <= set(leaflet["sections"])
    }
    assert missing == {}


def test_records_cover_every_required_section_of_every_drug(leaflets, records):
    have = {(r.focus, r.section) for r in records}
    for leaflet in leaflets:
        for section in REQUIRED_SECTIONS:
            assert (leaflet["drug"], section) in have


def test_one_record_per_section(leaflets, records):
    assert len(records) == sum(len(leaflet["sections"]) for leaflet in leaflets)


def test_ids_unique(records):
    duplicates = [i for i, n in Counter(r.id for r in records).items() if n > 1]
    assert duplicates == []


def test_every_record_has_question_and_answer(records):
    for record in records:
        assert record.question and record.question.strip(), record.locator
        assert record.answer and record.answer.strip(), record.locator
        assert record.id is not None
        assert record.source == SOURCE_NAME


def test_questions_follow_templates_and_answers_are_single_spaced(records):
    for record in records:
        if record.section in QUESTION_TEMPLATES:
            assert record.question == QUESTION_TEMPLATES[record.section].format(drug=record.focus)
        assert record.id == f"{SOURCE_NAME}:{slug(record.focus)}:{record.section}"
        assert "\n" not in record.answer and "  " not in record.answer


def test_slug():
    assert slug("Insulin (glargine)") == "insulin-glargine"
    assert slug("  Vitamin  D ") == "vitamin-d"
