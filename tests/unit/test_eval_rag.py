"""RAG evaluation scoring: per-label means, abstention share, recall@k, MLflow-valid metric names,
the report section. Answers are given texts (no model): the scoring is what is under test."""

from __future__ import annotations

from mlflow.utils.validation import _validate_metric_name

from drugslm_core.data.sample_corpus import leaflet_records
from drugslm_core.evaluation.benchmark import Benchmark, BenchmarkAnswer, load_benchmark
from drugslm_core.evaluation.rag import RagAnswer, load_out_of_corpus, rag_metrics, render_rag_section, score_rag
from drugslm_core.evaluation.safety import corpus_safety_checker
from drugslm_core.retrieval.chunks import build_chunks
from drugslm_core.retrieval.index import RetrievalIndex
from drugslm_core.retrieval.search import Retriever


def test_scores_labels_abstention_and_metric_names() -> None:
    full = load_benchmark()
    item = next(i for i in full.items if i.section == "dosage" and i.drug == "Losartan")
    benchmark = Benchmark(name="b", version="1", items=[item])
    retriever = Retriever(RetrievalIndex.build(build_chunks([r for r in leaflet_records() if r.focus == "Losartan"])))
    plain = {"base": [BenchmarkAnswer(id=item.id, category=item.category, difficulty=item.difficulty, question=item.question,
                                      response="Take 850 mg three times a day.", time_seconds=1.0, timestamp="t")]}
    grounded = item.reference_answer  # the leaflet text itself: every key fact, no invented dose
    rag = {"base_rag": [RagAnswer(id=item.id, question=item.question, response=grounded, citations=[], abstained=False,
                                  seconds=1.2)]}
    questions = load_out_of_corpus(2)
    out = {"base_rag": [RagAnswer(id=q.id, question=q.question, response="-", citations=[], abstained=i == 0, seconds=0.0)
                        for i, q in enumerate(questions)]}
    result = score_rag(benchmark, plain, rag, out, corpus_safety_checker(), retriever, 3)

    assert result.means["base"]["invented_doses"] == 1.0  # 850 mg is not in the losartan leaflet
    assert result.means["base_rag"]["invented_doses"] == 0.0
    assert result.means["base_rag"]["key_fact_recall"] == 1.0 > result.means["base"]["key_fact_recall"]
    assert result.means["base_rag"]["seconds_per_answer"] == 1.2
    assert result.abstain_out_of_corpus == {"base_rag": 0.5}
    assert result.recall_at_k == 1.0 and result.index_hash == retriever.index.content_hash
    metrics = rag_metrics(result)
    for name in metrics:
        _validate_metric_name(name)  # MLflow refuses names with '+' and the like
    assert metrics["rag.base_rag.abstain_out_of_corpus"] == 0.5
    html = render_rag_section(result)
    assert "recall@3" in html and "base_rag" in html and "cannot abstain" in html
