"""Retrieval core on the bundled leaflets: stable chunk ids, index round trip, hybrid search recall,
drug-name awareness, abstention, context budget and citations.

Builds one index of the 40 bundled leaflets (320 chunks, ~15 s of MiniLM on 2 cores) per module.
"""

from __future__ import annotations

import json
import re
from importlib import resources

import pytest

from drugslm_core.config import RetrievalSettings
from drugslm_core.data.records import QARecord
from drugslm_core.data.sample_corpus import leaflet_records
from drugslm_core.evaluation.benchmark import load_benchmark
from drugslm_core.retrieval.chunks import build_chunks
from drugslm_core.retrieval.context import abstention_message, assemble_context, grounded_question
from drugslm_core.retrieval.index import RetrievalIndex
from drugslm_core.retrieval.search import Retriever

RECALL_AT_5_THRESHOLD = 0.95
ABSTENTION_THRESHOLD = 0.9


@pytest.fixture(scope="module")
def index() -> RetrievalIndex:
    return RetrievalIndex.build(build_chunks(leaflet_records()))


@pytest.fixture(scope="module")
def retriever(index: RetrievalIndex) -> Retriever:
    return Retriever(index, RetrievalSettings())


def out_of_corpus_questions() -> list[dict]:
    text = resources.files("drugslm_core.data.benchmark").joinpath("out_of_corpus_v1.json").read_text(encoding="utf-8")
    return json.loads(text)["questions"]


def test_chunk_ids_are_stable_unique_and_name_their_section() -> None:
    first, second = build_chunks(leaflet_records()), build_chunks(leaflet_records())
    assert [c.chunk_id for c in first] == [c.chunk_id for c in second]
    assert len({c.chunk_id for c in first}) == len(first) == 320
    chunk = next(c for c in first if c.drug == "Amoxicillin" and c.section == "dosage")
    assert chunk.chunk_id == "sample-corpus:amoxicillin:dosage:0"
    assert "500 mg every 8 hours" in chunk.text


def test_long_sections_continue_numbering_and_identical_texts_are_indexed_once() -> None:
    text = " ".join(f"Sentence number {i} says the dose is {i} mg." for i in range(40))
    record = QARecord(id="r1", question="q", answer=text, focus="Testdrug", source="file.jsonl", locator="line 1",
                      section="dosage")
    chunks = build_chunks([record, record.model_copy(update={"id": "r2"})], max_chars=200)
    assert len(chunks) > 1
    assert [c.number for c in chunks] == list(range(len(chunks)))
    assert " ".join(c.text for c in chunks) == text  # every word kept, in order


def test_index_round_trip_gives_the_same_results(index: RetrievalIndex, tmp_path) -> None:
    index.save(tmp_path / "index")
    loaded = RetrievalIndex.load(tmp_path / "index")
    assert loaded.content_hash == index.content_hash and len(loaded) == len(index)
    before, after = Retriever(index), Retriever(loaded)
    for question in ("How much metformin should an adult take?", "What antibiotic treats strep throat?"):
        assert [h.chunk.chunk_id for h in before.search(question).hits] == [h.chunk.chunk_id for h in after.search(question).hits]


def test_a_tampered_index_is_refused(index: RetrievalIndex, tmp_path) -> None:
    index.save(tmp_path / "index")
    path = tmp_path / "index" / "chunks.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(ValueError, match="content hash"):
        RetrievalIndex.load(tmp_path / "index")


def test_recall_at_5_by_chunk_id_on_the_benchmark(retriever: Retriever) -> None:
    benchmark = load_benchmark()
    found = 0
    for item in benchmark.items:
        expected = {c.chunk_id for c in retriever.index.chunks if c.drug == item.drug and c.section == item.section}
        assert expected, f"benchmark item {item.id}: no chunk of {item.drug} / {item.section} in the index"
        found += bool(expected & {h.chunk.chunk_id for h in retriever.search(item.question, 5).hits})
    assert found / len(benchmark.items) >= RECALL_AT_5_THRESHOLD


def test_a_named_drug_gets_only_its_own_leaflet(retriever: Retriever) -> None:
    result = retriever.search("What is the usual warfarin dose and how is it adjusted?")
    assert result.named_drugs == ["Warfarin"]
    assert {h.chunk.drug for h in result.hits} == {"Warfarin"}
    assert result.hits[0].chunk.section == "dosage"


def test_abstains_on_out_of_corpus_questions(retriever: Retriever) -> None:
    questions = out_of_corpus_questions()
    results = [retriever.search(q["question"]) for q in questions]
    assert all(not r.hits for r in results if r.abstained)
    assert sum(r.abstained for r in results) / len(results) >= ABSTENTION_THRESHOLD
    semaglutide = retriever.search("What is the starting weekly dose of semaglutide injections?")
    assert semaglutide.abstained and "semaglutide" in semaglutide.reason
    message = abstention_message(retriever.index.drugs)
    assert "Warfarin" in message and "Amoxicillin" in message


def test_a_general_question_about_the_corpus_is_answered(retriever: Retriever) -> None:
    result = retriever.search("Which antibiotic is used for strep throat?")
    assert not result.abstained
    assert result.hits[0].chunk.chunk_id == "sample-corpus:amoxicillin:indications:0"


def test_context_fits_its_budget_and_every_citation_holds_the_cited_doses(retriever: Retriever) -> None:
    benchmark = load_benchmark()
    dose = re.compile(r"\d+(?:\.\d+)?\s*(?:mg|g|micrograms|units|ml)\b", re.IGNORECASE)
    for item in benchmark.items:
        if item.section != "dosage":
            continue
        context = assemble_context(retriever.search(item.question).hits, 200)
        assert context.tokens <= 200 and context.citations
        blocks = context.text.split("\n")
        assert len(blocks) == len(context.citations)
        for block, citation in zip(blocks, context.citations):
            chunk = retriever.index.by_id[citation.chunk_id]  # the cited chunk exists
            assert (chunk.drug, chunk.section, chunk.source) == (citation.drug, citation.section, citation.source)
            for mention in dose.findall(block):
                assert mention in chunk.text, f"{citation.chunk_id} cited for {mention!r}"
        assert item.question in grounded_question(item.question, context)
    assert assemble_context(retriever.search("How much metformin?").hits, 16).citations == []
