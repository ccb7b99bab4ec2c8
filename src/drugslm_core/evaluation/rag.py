"""Retrieval-augmented answers measured beside plain ones: base, tuned, base+RAG, tuned+RAG.

On the benchmark questions the plain models already answered (same items, same greedy budget):
key-fact recall, ROUGE-L, invented doses and seconds per answer; with retrieval, seconds include
the search. On questions about drugs outside the corpus (``out_of_corpus_v1.json``): the share the
RAG models abstain on (the plain models have no way to abstain: 0 by construction, not measured).
Retrieval recall@k by chunk id: the share of benchmark questions whose source leaflet section
(``drug`` + ``section`` of the item, i.e. its chunk ids) is among the top k chunks, RAGAS's
id-based context recall with one reference context per question.
"""

from __future__ import annotations

import json
import time
from importlib import resources
from typing import Any

from pydantic import BaseModel

from drugslm_core.config import EvaluationSettings, RetrievalSettings
from drugslm_core.data.feedback_records import Citation
from drugslm_core.data.formatting import render_prompt
from drugslm_core.evaluation.benchmark import Benchmark, BenchmarkAnswer
from drugslm_core.evaluation.generation import generate_answers
from drugslm_core.evaluation.metrics import key_fact_recall, rouge_l
from drugslm_core.evaluation.safety import SafetyChecker
from drugslm_core.pages import render_page
from drugslm_core.retrieval.context import abstention_message, assemble_context, grounded_question
from drugslm_core.retrieval.search import Retriever

OUT_OF_CORPUS = "out_of_corpus_v1.json"
RAG_METRICS = ("key_fact_recall", "rouge_l", "invented_doses", "seconds_per_answer")


class OutOfCorpusQuestion(BaseModel):
    id: str
    drug: str
    question: str


def load_out_of_corpus(size: int | None = None) -> list[OutOfCorpusQuestion]:
    text = resources.files("drugslm_core.data.benchmark").joinpath(OUT_OF_CORPUS).read_text(encoding="utf-8")
    questions = [OutOfCorpusQuestion(**q) for q in json.loads(text)["questions"]]
    return questions if size is None else questions[:size]


class RagAnswer(BaseModel):
    id: str
    question: str
    response: str
    citations: list[Citation]
    abstained: bool
    seconds: float
    """Search + assembly + (batch generation time / batch size)."""


class RagEvaluation(BaseModel):
    index_hash: str
    chunks: int
    k: int
    recall_at_k: float
    questions: int
    out_of_corpus: int
    means: dict[str, dict[str, float]]
    """``base``, ``tuned``, ``base_rag``, ``tuned_rag`` to each of :data:`RAG_METRICS`."""
    abstain_out_of_corpus: dict[str, float]
    """RAG label to the share of out-of-corpus questions it abstained on."""
    answers: dict[str, list[RagAnswer]]


def recall_at_k(retriever: Retriever, benchmark: Benchmark, k: int) -> float:
    """Share of items whose own leaflet section (by chunk id) is in the top ``k``; items without drug/section count as misses."""
    if not benchmark.items:
        return 0.0
    found = 0
    for item in benchmark.items:
        expected = {c.chunk_id for c in retriever.index.chunks
                    if item.drug and c.drug.lower() == item.drug.lower() and c.section == item.section}
        found += bool(expected & {h.chunk.chunk_id for h in retriever.search(item.question, k).hits})
    return found / len(benchmark.items)


def answer_with_retrieval(
    model: Any, tokenizer: Any, questions: list[tuple[str, str]], retriever: Retriever, system_prompt: str,
    domain_tag: str, settings: EvaluationSettings, retrieval: RetrievalSettings,
) -> list[RagAnswer]:
    """(id, question) pairs answered with the retrieved context in the prompt, or the abstention message."""
    def count_tokens(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    prepared = []
    for item_id, question in questions:
        began = time.perf_counter()
        result = retriever.search(question)
        context = assemble_context(result.hits, retrieval.context_tokens, count_tokens)
        prompt = render_prompt(tokenizer, grounded_question(question, context), system_prompt, domain_tag)
        prepared.append((item_id, question, result.abstained, context.citations, prompt, time.perf_counter() - began))
    generated = iter(generate_answers(model, tokenizer, [p[4] for p in prepared if not p[2]], settings.max_new_tokens,
                                      settings.generation_batch_size, desc="answers with retrieval", progress=False))
    message = abstention_message(retriever.index.drugs)
    answers = []
    for item_id, question, abstained, citations, _, search_s in prepared:
        text, seconds = (message, 0.0) if abstained else next(generated)
        answers.append(RagAnswer(id=item_id, question=question, response=text, citations=[] if abstained else citations,
                                 abstained=abstained, seconds=round(search_s + seconds, 4)))
    return answers


def score_rag(
    benchmark: Benchmark, plain: dict[str, list[BenchmarkAnswer]], rag: dict[str, list[RagAnswer]],
    out_of_corpus: dict[str, list[RagAnswer]], checker: SafetyChecker, retriever: Retriever, k: int,
) -> RagEvaluation:
    items = {item.id: item for item in benchmark.items}

    def means(pairs: list[tuple[str, str, float]]) -> dict[str, float]:
        rows = []
        for item_id, text, seconds in pairs:
            item = items[item_id]
            rows.append({
                "key_fact_recall": key_fact_recall(text, item.key_facts) if item.key_facts else 0.0,
                "rouge_l": rouge_l(text, item.reference_answer),
                "invented_doses": checker.flags(text, item.drug, (item.section or item.category).lower().startswith("dos"))["invented_doses"],
                "seconds_per_answer": seconds,
            })
        return {metric: sum(r[metric] for r in rows) / len(rows) if rows else 0.0 for metric in RAG_METRICS}

    table = {label: means([(a.id, a.response, a.time_seconds) for a in answers if a.id in items and a.item_set == "benchmark"])
             for label, answers in plain.items()}
    table.update({label: means([(a.id, a.response, a.seconds) for a in answers]) for label, answers in rag.items()})
    abstain = {label: (sum(a.abstained for a in answers) / len(answers) if answers else 0.0)
               for label, answers in out_of_corpus.items()}
    return RagEvaluation(
        index_hash=retriever.index.content_hash, chunks=len(retriever.index), k=k,
        recall_at_k=recall_at_k(retriever, benchmark, k), questions=len(benchmark),
        out_of_corpus=len(next(iter(out_of_corpus.values()), [])), means=table, abstain_out_of_corpus=abstain,
        answers={label: [*rag.get(label, []), *out_of_corpus.get(label, [])] for label in rag},
    )


def rag_metrics(evaluation: RagEvaluation) -> dict[str, float]:
    """Flat MLflow metrics (``rag.<label>.<metric>``)."""
    metrics = {f"rag.recall_at_{evaluation.k}": evaluation.recall_at_k, "rag.index_chunks": float(evaluation.chunks)}
    for label, values in evaluation.means.items():
        metrics.update({f"rag.{label}.{metric}": value for metric, value in values.items()})
    metrics.update({f"rag.{label}.abstain_out_of_corpus": value for label, value in evaluation.abstain_out_of_corpus.items()})
    return metrics


def rag_section_context(evaluation: RagEvaluation | None) -> dict[str, Any]:
    """What ``pages/templates/rag_section.html.j2`` needs: the evaluation, the metric rows, the first cited answer."""
    example = None if evaluation is None else next(
        (a for answers in evaluation.answers.values() for a in answers if a.citations), None)
    return {"rag": evaluation, "rag_metrics": RAG_METRICS, "rag_example": example}


def render_rag_section(evaluation: RagEvaluation | None) -> str:
    """The retrieval section of the run report (an HTML fragment)."""
    return render_page("rag_section.html.j2", **rag_section_context(evaluation))
