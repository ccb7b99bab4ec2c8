"""Retrieval in `drugslm serve`: a REAL uvicorn server on loopback, a real MLflow registry (SQLite)
whose version names its retrieval index (the tags the training pipeline's register step writes),
the real 4-bit base model with a fresh LoRA adapter (answers like the base), the official
``openai`` client. Checks citations (JSON and stream), the per-request switch and abstention."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import mlflow
import pytest

from drugslm_core.config import BaseModelSettings, DataSettings, ServingSettings
from drugslm_core.data.sample_corpus import leaflet_records
from drugslm_core.evaluation.safety import dose_mentions
from drugslm_core.registry.mlflow_registry import retrieval_index_tags
from drugslm_core.retrieval.chunks import build_chunks
from drugslm_core.retrieval.index import RetrievalIndex
from drugslm_core.serving.app import ServedModel, ServerState, load_served_model
from tests.integration.test_serving import KEY, _client, running_server
from tests.registered_champion import register_champion

MODEL = "drugslm-rag-serving-test"
DRUGS = {"Metformin", "Warfarin", "Amoxicillin"}


@pytest.fixture(scope="module")
def index_and_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RetrievalIndex, Path]]:
    root = tmp_path_factory.mktemp("rag-serving")
    index = RetrievalIndex.build(build_chunks([r for r in leaflet_records() if r.focus in DRUGS]))
    index.save(root / "artifact" / "index")  # the materializer's layout: <artifact uri>/index
    previous = mlflow.get_tracking_uri()
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking_uri)  # load_served_model reads the registry MLflow points at
    register_champion(tracking_uri, MODEL, root,
                      tags=retrieval_index_tags(index.content_hash, str(root / "artifact"), "test-artifact"))
    yield index, root
    mlflow.set_tracking_uri(previous)


@pytest.fixture(scope="module")
def served(index_and_registry: tuple[RetrievalIndex, Path]) -> ServedModel:
    return load_served_model(MODEL, "champion", BaseModelSettings(), DataSettings(), index_and_registry[1] / "download")


@pytest.fixture(scope="module")
def server(served: ServedModel) -> Iterator[str]:
    with running_server(ServerState(served, ServingSettings()), [KEY]) as url:
        yield url


def test_the_served_index_is_the_one_the_version_names(served: ServedModel, index_and_registry) -> None:
    index, _ = index_and_registry
    assert served.retriever is not None
    assert served.retriever.index.content_hash == index.content_hash


def test_answer_carries_citations_of_existing_chunks_holding_the_doses(server: str, index_and_registry) -> None:
    index, _ = index_and_registry
    question = "What is the usual adult dose of metformin?"
    completion = _client(server).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": question}], max_tokens=48)
    citations = completion.model_extra["citations"]
    assert citations and citations[0]["chunk_id"] == "sample-corpus:metformin:dosage:0"
    for citation in citations:
        chunk = index.by_id[citation["chunk_id"]]  # every citation points to an existing chunk
        assert (chunk.drug, chunk.section, chunk.source) == (citation["drug"], citation["section"], citation["source"])
    assert {("mass", 500.0), ("mass", 2000.0)} <= dose_mentions(index.by_id[citations[0]["chunk_id"]].text)
    # Every dose the answer states is in a chunk it cites (greedy decoding with the excerpts in the prompt);
    # doses compared as the safety flags compare them (1 g = 1000 mg, 1,000 = 1000).
    answer = completion.choices[0].message.content
    cited = set().union(*(dose_mentions(index.by_id[c["chunk_id"]].text) for c in citations))
    assert dose_mentions(answer) <= cited, (answer, cited)


def test_streamed_chunks_carry_the_citations(server: str) -> None:
    body = {"messages": [{"role": "user", "content": "Which medicines interact with warfarin?"}], "max_tokens": 8,
            "stream": True}
    with httpx.stream("POST", f"{server}/v1/chat/completions", json=body,
                      headers={"Authorization": f"Bearer {KEY}"}, timeout=120) as response:
        events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {")]
    first, last = events[0], events[-1]
    assert first["citations"] and first["citations"][0]["chunk_id"] == "sample-corpus:warfarin:interactions:0"
    assert last["choices"][0]["finish_reason"] and last["citations"] == first["citations"]


def test_retrieval_false_answers_without_context(server: str) -> None:
    response = httpx.post(f"{server}/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"}, timeout=120,
                          json={"messages": [{"role": "user", "content": "What is the usual adult dose of metformin?"}],
                                "max_tokens": 4, "retrieval": False})
    assert response.status_code == 200
    assert response.json()["citations"] == []
    assert response.json()["usage"]["prompt_tokens"] < 120  # no excerpts in the prompt


def test_out_of_corpus_question_abstains_with_the_leaflets_it_has(server: str) -> None:
    client = _client(server)
    completion = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "What is the starting weekly dose of semaglutide?"}])
    text = completion.choices[0].message.content
    assert completion.model_extra["abstained"] is True and completion.model_extra["citations"] == []
    assert "won't guess" in text and all(drug in text for drug in DRUGS)
    assert completion.usage.completion_tokens == 0  # the model was not run
    stream = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "How should methylphenidate tablets be stored?"}], stream=True)
    assert "won't guess" in "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
