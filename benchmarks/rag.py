"""Retrieval-augmented answers vs plain answers on the bundled leaflet benchmark (issue 17).

    .venv/bin/python benchmarks/rag.py [--questions 48] [--adapter DIR] [--max-new-tokens 64] [--batch 16]
                                       [--latency-questions 12]

Builds the retrieval index of the bundled leaflets (MiniLM + FAISS, BM25), then, with one model
(the 4-bit base, or base + ``--adapter``), answers every benchmark question twice in the same run:
without retrieval (the baseline) and with the retrieved context in the prompt; and answers the
out-of-corpus questions with retrieval (abstention). Prints per-metric figures and ratios against
the no-retrieval baseline; the last line is

    BENCH rag recall_at_5=… kfr_rag=… kfr_norag=… invented_doses_rag=… invented_doses_norag=…
              abstain_out_of_corpus=… latency_ratio=…

recall@5: share of benchmark questions whose source leaflet section (by chunk id) is in the top 5.
kfr: mean key-fact recall. invented_doses: share of answers stating a dose the drug's leaflet lacks.
abstain_out_of_corpus: share of out-of-corpus questions answered with the abstention message.
latency_ratio: what a user waits for one answer, as served (one request at a time, batch 1):
mean seconds with retrieval (search + assembly + generation on the longer prompt) / without, on
``--latency-questions`` benchmark questions, the two kinds interleaved so that machine load hits both.
batched_cost_ratio (reported, not a target): the same ratio for the batched evaluation run, where a
longer prompt pads and slows every answer of its batch.
"""

from __future__ import annotations

import argparse
import json
import time
from importlib import resources

from drugslm_core.config import BaseModelSettings, DataSettings, RetrievalSettings
from drugslm_core.data.formatting import render_prompt
from drugslm_core.data.sample_corpus import leaflet_records
from drugslm_core.evaluation.benchmark import load_benchmark
from drugslm_core.evaluation.generation import generate_answers
from drugslm_core.evaluation.metrics import key_fact_recall
from drugslm_core.evaluation.safety import corpus_safety_checker
from drugslm_core.modeling.base_model import provision_base_model
from drugslm_core.modeling.loading import load_quantized_base, load_tokenizer, load_with_adapter
from drugslm_core.retrieval.chunks import build_chunks
from drugslm_core.retrieval.context import abstention_message, assemble_context, grounded_question
from drugslm_core.retrieval.index import RetrievalIndex
from drugslm_core.retrieval.search import Retriever


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=int, default=48)
    parser.add_argument("--adapter", default=None)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--latency-questions", type=int, default=12, help="questions timed one request at a time")
    args = parser.parse_args()

    settings = RetrievalSettings()
    records = leaflet_records()
    began = time.perf_counter()
    index = RetrievalIndex.build(build_chunks(records, settings.chunk_strategy, settings.chunk_max_chars,
                                              settings.chunk_overlap_chars))
    print(json.dumps({"index_chunks": len(index), "index_hash": index.content_hash[:12],
                      "build_s": round(time.perf_counter() - began, 1)}), flush=True)
    retriever = Retriever(index, settings)
    benchmark = load_benchmark().subset(args.questions)
    out_of_corpus = json.loads(resources.files("drugslm_core.data.benchmark")
                               .joinpath("out_of_corpus_v1.json").read_text(encoding="utf-8"))["questions"]

    recall = sum(
        any(h.chunk.drug == item.drug and h.chunk.section == item.section for h in retriever.search(item.question, 5).hits)
        for item in benchmark.items
    ) / len(benchmark)

    base = provision_base_model(BaseModelSettings())
    tokenizer = load_tokenizer(base)
    model = load_with_adapter(base, args.adapter) if args.adapter else load_quantized_base(base)
    data = DataSettings()

    def prompt(question: str) -> str:
        return render_prompt(tokenizer, question, data.system_prompt, data.domain_tag)

    def count_tokens(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    # Without retrieval: the baseline of this run.
    plain = generate_answers(model, tokenizer, [prompt(i.question) for i in benchmark.items], args.max_new_tokens,
                             args.batch, desc="no retrieval")
    # With retrieval: search + assemble per question (timed), then the same batched generation.
    search_seconds, rag_prompts, abstained = [], [], []
    for item in benchmark.items:
        start = time.perf_counter()
        result = retriever.search(item.question)
        context = assemble_context(result.hits, settings.context_tokens, count_tokens)
        rag_prompts.append(prompt(grounded_question(item.question, context)))
        search_seconds.append(time.perf_counter() - start)
        abstained.append(result.abstained)
    generated = iter(generate_answers(model, tokenizer, [p for p, a in zip(rag_prompts, abstained) if not a],
                                      args.max_new_tokens, args.batch, desc="with retrieval"))
    message = abstention_message(index.drugs)
    rag = [(message, 0.0) if a else next(generated) for a in abstained]

    checker = corpus_safety_checker()

    def figures(answers: list[tuple[str, float]], extra_seconds: list[float]) -> dict[str, float]:
        kfr = [key_fact_recall(text, item.key_facts) for (text, _), item in zip(answers, benchmark.items)]
        invented = [checker.flags(text, item.drug, item.section == "dosage")["invented_doses"]
                    for (text, _), item in zip(answers, benchmark.items)]
        seconds = [s + e for (_, s), e in zip(answers, extra_seconds)]
        return {"kfr": sum(kfr) / len(kfr), "invented_doses": sum(invented) / len(invented),
                "seconds_per_answer": sum(seconds) / len(seconds)}

    no_rag = figures(plain, [0.0] * len(plain))
    with_rag = figures(rag, search_seconds)

    # Per-request latency, as the server answers (batch 1): search + assembly + generation vs generation.
    timed = [i for i, a in enumerate(abstained) if not a][: args.latency_questions]
    plain_seconds, rag_seconds = [], []
    for i in timed:
        [(_, seconds)] = generate_answers(model, tokenizer, [prompt(benchmark.items[i].question)],
                                          args.max_new_tokens, 1, progress=False)
        plain_seconds.append(seconds)
        start = time.perf_counter()
        result = retriever.search(benchmark.items[i].question)
        context = assemble_context(result.hits, settings.context_tokens, count_tokens)
        grounded = prompt(grounded_question(benchmark.items[i].question, context))
        searched = time.perf_counter() - start
        [(_, seconds)] = generate_answers(model, tokenizer, [grounded], args.max_new_tokens, 1, progress=False)
        rag_seconds.append(searched + seconds)
    latency_ratio = sum(rag_seconds) / sum(plain_seconds)
    batched_ratio = with_rag["seconds_per_answer"] / no_rag["seconds_per_answer"]
    abstain = sum(retriever.search(q["question"]).abstained for q in out_of_corpus) / len(out_of_corpus)
    wrongly_abstained = sum(abstained)
    print(json.dumps({"no_rag": no_rag, "rag": with_rag, "questions": len(benchmark),
                      "in_corpus_abstained": wrongly_abstained, "out_of_corpus": len(out_of_corpus),
                      "per_request_s": {"no_rag": round(sum(plain_seconds) / len(timed), 3),
                                        "rag": round(sum(rag_seconds) / len(timed), 3), "questions": len(timed)}}),
          flush=True)
    example = next(i for i, item in enumerate(benchmark.items) if item.section == "dosage")
    print(json.dumps({"example_question": benchmark.items[example].question, "rag_answer": rag[example][0],
                      "citations": [c.model_dump() for c in assemble_context(
                          retriever.search(benchmark.items[example].question).hits, settings.context_tokens,
                          count_tokens).citations],
                      "plain_answer": plain[example][0]}, indent=1), flush=True)
    kfr_ratio = with_rag["kfr"] / no_rag["kfr"] if no_rag["kfr"] else float("inf")
    print(f"ratios vs no retrieval: key-fact recall x{kfr_ratio:.2f}, invented doses "
          f"{with_rag['invented_doses']:.3f} vs {no_rag['invented_doses']:.3f}, latency per request "
          f"x{latency_ratio:.2f}, batched evaluation cost x{batched_ratio:.2f}")
    print(
        f"BENCH rag recall_at_5={recall:.3f} kfr_rag={with_rag['kfr']:.3f} kfr_norag={no_rag['kfr']:.3f} "
        f"invented_doses_rag={with_rag['invented_doses']:.3f} invented_doses_norag={no_rag['invented_doses']:.3f} "
        f"abstain_out_of_corpus={abstain:.3f} "
        f"latency_ratio={latency_ratio:.2f} batched_cost_ratio={batched_ratio:.2f}"
    )


if __name__ == "__main__":
    main()
