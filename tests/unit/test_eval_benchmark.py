"""The bundled benchmark: format, coverage, and separation from the training data."""

from __future__ import annotations

import json

import pytest

from drugslm_core.data.sample_corpus import QUESTION_TEMPLATES, leaflet_records, load_leaflets
from drugslm_core.evaluation.benchmark import Benchmark, load_benchmark, parse_benchmark
from drugslm_core.evaluation.metrics import normalize_text, rouge_l


@pytest.fixture(scope="module")
def benchmark() -> Benchmark:
    return load_benchmark()


def test_bundled_benchmark_has_the_autoimmune_format_and_enough_items(benchmark: Benchmark):
    assert len(benchmark) >= 40
    assert len({item.id for item in benchmark.items}) == len(benchmark)
    assert len(benchmark.categories) == 8
    for item in benchmark.items:
        assert item.category and item.question.endswith(("?", "."))
        assert item.difficulty in {"easy", "medium", "hard"}
        assert len(item.key_facts) >= 3
        assert item.reference_answer


def test_items_are_about_corpus_drugs_and_key_facts_are_in_the_reference(benchmark: Benchmark):
    leaflets = {leaflet["drug"]: leaflet for leaflet in load_leaflets()}
    for item in benchmark.items:
        assert item.drug in leaflets, item.id
        source = " ".join(leaflets[item.drug]["sections"][item.section].split())
        assert item.reference_answer == source
        for fact in item.key_facts:
            assert set(normalize_text(fact).split()) <= set(normalize_text(item.reference_answer).split()), (item.id, fact)


def test_no_benchmark_question_is_a_training_question(benchmark: Benchmark):
    """Training questions come from the corpus's templates; the benchmark is phrased otherwise
    (and lives in a file that ingestion never reads)."""
    training = {normalize_text(record.question) for record in leaflet_records()}
    for item in benchmark.items:
        question = normalize_text(item.question)
        assert question not in training
        template = QUESTION_TEMPLATES[item.section].format(drug=item.drug)
        assert rouge_l(item.question, template) < 0.6, (item.id, item.question, template)
    record_ids = {record.id for record in leaflet_records()}
    assert not record_ids & {item.id for item in benchmark.items}


def test_subset_covers_categories_round_robin(benchmark: Benchmark):
    subset = benchmark.subset(12)
    assert len(subset) == 12
    assert len(set(item.category for item in subset.items)) == 8
    assert subset.items == benchmark.subset(12).items  # deterministic
    assert benchmark.subset(None) is benchmark and benchmark.subset(1000) is benchmark


def test_parse_accepts_ground_truth_mapping_and_rejects_missing_reference(tmp_path):
    document = {
        "name": "mini", "version": "2",
        "questions": [{"id": "Q1", "category": "Dosage", "difficulty": "easy", "question": "How much?", "key_facts": ["5 mg"]}],
        "ground_truth": {"Q1": "Take 5 mg."},
    }
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(document))
    loaded = load_benchmark(path)
    assert loaded.items[0].reference_answer == "Take 5 mg." and loaded.version == "2"
    with pytest.raises(ValueError, match="Q1"):
        parse_benchmark({**document, "ground_truth": {}})


def test_heldout_benchmark_takes_the_eval_split_questions_with_their_answers_as_references():
    from drugslm_core.data.formatting import InstructionDataset, InstructionExample
    from drugslm_core.evaluation.benchmark import heldout_benchmark

    examples = [
        InstructionExample(id=f"e{n}", focus=focus, section=section, question=f"{focus} {section}?",
                           answer=f"{focus} answer about {section}.", prompt="p", completion="c")
        for n, (focus, section) in enumerate([("Gout", "overview"), ("Gout", "treatment"), ("Asthma", "overview")])
    ]
    split = InstructionDataset(examples=examples)
    full = heldout_benchmark(split, None)
    assert [(i.id, i.question, i.reference_answer, i.drug) for i in full.items] == [
        (e.id, e.question, e.answer, e.focus) for e in examples
    ]
    assert all(not item.key_facts for item in full.items) and full.name == "held-out eval split"
    # a subset goes round-robin across sections: overview, treatment
    assert [item.id for item in heldout_benchmark(split, 2).items] == ["e0", "e1"]
    assert len(heldout_benchmark(split, 0)) == 0
