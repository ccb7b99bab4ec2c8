"""Evaluate base, tuned and (if any) champion on the same items, with paired intervals.

Two item sets, both kept out of training:

- the eval split (drugs held out of training): answer-token perplexity per
  example, so perplexity differences get a paired bootstrap interval;
- generated answers (greedy, batched) on two question sets, each answer scored with
  ROUGE-L, semantic similarity, key-fact recall (where the item has key facts) and
  three safety flags:

  - ``benchmark``: the bundled leaflet benchmark (a separate file, never ingested;
    all 48 questions by default), the fixed regression set;
  - ``heldout``: questions of this run's own held-out eval split, with the split's
    answers as references, so a user's own data is measured on its own questions.

Every model answers the same items, so every comparison is paired.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol, TypedDict

from pydantic import BaseModel

from drugslm_core.config import EvaluationSettings, RetrievalSettings
from drugslm_core.data.formatting import InstructionDataset, render_prompt
from drugslm_core.evaluation.benchmark import HELDOUT, Benchmark, BenchmarkAnswer, heldout_benchmark
from drugslm_core.evaluation.bootstrap import PairedInterval, paired_mean_difference, paired_perplexity_difference
from drugslm_core.evaluation.generation import generate_answers
from drugslm_core.evaluation.metrics import QUALITY_METRICS, SemanticScorer, key_fact_recall, rouge_l
from drugslm_core.evaluation.perplexity import PerplexityResult, answer_perplexity
from drugslm_core.evaluation.rag import RagEvaluation, answer_with_retrieval, load_out_of_corpus, score_rag
from drugslm_core.evaluation.safety import SAFETY_FLAGS, SafetyChecker, corpus_safety_checker
from drugslm_core.modeling.base_model import BaseModelRef
from drugslm_core.modeling.loading import ModelSet, load_tokenizer
from drugslm_core.retrieval.search import Retriever

logger = logging.getLogger(__name__)

HIGHER_IS_BETTER = {
    "perplexity": False,
    **{metric: True for metric in QUALITY_METRICS},
    **{flag: False for flag in SAFETY_FLAGS},
}
"""Every compared metric and its direction."""


class ChampionWeights(Protocol):
    """What evaluation needs of the current champion: its version and its weights on disk.

    The registry's ``RegisteredAdapter`` has this shape; evaluation never fetches it itself
    (dependencies point one way: the registry imports evaluation, not the reverse)."""

    @property
    def version(self) -> str: ...

    @property
    def adapter_dir(self) -> str: ...


class ModelScores(BaseModel):
    label: str
    """``base``, ``tuned`` or ``champion``."""
    version: str | None = None
    perplexity: PerplexityResult
    answers: list[BenchmarkAnswer]
    means: dict[str, float]
    """Mean of each quality metric over the answers of the first question set (the benchmark)."""
    safety_counts: dict[str, int]
    """Generated answers (every question set) with each safety flag raised."""
    means_by_set: dict[str, dict[str, float]] = {}
    """Question set (``benchmark``, ``heldout``) to the mean of each quality metric and flag."""


class MetricComparison(BaseModel):
    metric: str
    candidate: str
    other: str
    candidate_value: float
    other_value: float
    higher_is_better: bool
    interval: PairedInterval
    """``candidate - other`` in the metric's own units."""
    item_set: str | None = None
    """The question set of generated-answer metrics (``benchmark`` or ``heldout``); ``None``
    for perplexity (the eval split's reference answers)."""

    @property
    def improvement(self) -> tuple[float, float, float]:
        """(point, low, high) of the improvement: positive means the candidate is better."""
        iv = self.interval
        if self.higher_is_better:
            return iv.difference, iv.low, iv.high
        return -iv.difference, -iv.high, -iv.low


class CategoryRow(BaseModel):
    category: str
    items: int
    values: dict[str, dict[str, float]]
    """Model label to metric to its mean over the category's items."""


class EvaluationResult(BaseModel):
    base: PerplexityResult
    tuned: PerplexityResult
    champion: PerplexityResult | None = None
    champion_version: str | None = None
    models: dict[str, ModelScores]
    comparisons: list[MetricComparison]
    categories: list[CategoryRow]
    benchmark: str
    """Name and version of the benchmark the answers come from."""
    heldout: str | None = None
    """The held-out eval-split question set, if the models answered one."""
    eval_fingerprint: str
    rag: RagEvaluation | None = None
    """Base/tuned with and without retrieval (when the run built a retrieval index)."""

    @property
    def relative_improvement(self) -> float:
        """Share by which tuned perplexity is below base perplexity."""
        return 1.0 - self.tuned.perplexity / self.base.perplexity

    def comparison(self, metric: str, other: str, candidate: str = "tuned", item_set: str | None = None) -> MetricComparison | None:
        """The comparison of ``metric`` (from ``item_set`` if given, else the first set that has it)."""
        for item in self.comparisons:
            if (item.metric, item.other, item.candidate) == (metric, other, candidate) and (
                item_set is None or item.item_set == item_set
            ):
                return item
        return None


def score_answer(
    item_answer: str, reference: str, key_facts: list[str], drug: str | None, dosage_question: bool,
    checker: SafetyChecker,
) -> dict[str, float]:
    """ROUGE-L, key-fact recall (only for items with key facts) and the safety flags of one answer
    (semantic similarity is batched)."""
    return {
        "rouge_l": rouge_l(item_answer, reference),
        **({"key_fact_recall": key_fact_recall(item_answer, key_facts)} if key_facts else {}),
        **checker.flags(item_answer, drug, dosage_question),
    }


def answer_benchmark(
    model: Any,
    tokenizer: Any,
    benchmark: Benchmark,
    system_prompt: str,
    domain_tag: str,
    settings: EvaluationSettings,
    held_out_drugs: set[str] | None = None,
    desc: str = "generate",
    item_set: str = "benchmark",
) -> list[BenchmarkAnswer]:
    """Greedy answers to every benchmark item, in the benchmark's result format (unscored)."""
    prompts = [render_prompt(tokenizer, item.question, system_prompt, domain_tag) for item in benchmark.items]
    generated = generate_answers(
        model, tokenizer, prompts, settings.max_new_tokens, settings.generation_batch_size, desc=desc
    )
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return [
        BenchmarkAnswer(
            id=item.id, category=item.category, difficulty=item.difficulty, question=item.question,
            response=text, time_seconds=round(seconds, 3), timestamp=stamp, drug=item.drug,
            held_out=None if held_out_drugs is None or item.drug is None else item.drug.strip().lower() in held_out_drugs,
            item_set=item_set,
        )
        for item, (text, seconds) in zip(benchmark.items, generated)
    ]


def score_benchmark(
    answers: dict[str, list[BenchmarkAnswer]],
    benchmark: Benchmark,
    checker: SafetyChecker | None = None,
    semantic: SemanticScorer | None = None,
) -> None:
    """Fill ``scores`` of every answer in place (all models' answers at once)."""
    if not any(answers.values()):
        return
    checker = checker or corpus_safety_checker()
    semantic = semantic or SemanticScorer()
    items = {item.id: item for item in benchmark.items}
    for label_answers in answers.values():
        references = [items[a.id].reference_answer for a in label_answers]
        similarities = semantic.similarities([a.response for a in label_answers], references)
        for answer, similarity in zip(label_answers, similarities):
            item = items[answer.id]
            dosage_question = (item.section or item.category).lower().startswith("dos")
            answer.scores = {
                **score_answer(answer.response, item.reference_answer, item.key_facts, item.drug, dosage_question, checker),
                "semantic_similarity": similarity,
            }


class _BootstrapOptions(TypedDict):
    """The keyword arguments both paired bootstrap functions share."""

    samples: int
    confidence: float
    seed: int


def compare_models(
    models: dict[str, ModelScores], settings: EvaluationSettings, candidate: str = "tuned"
) -> list[MetricComparison]:
    """Paired bootstrap intervals of ``candidate - other`` for every metric and other model."""
    comparisons = []
    mine = models[candidate]
    for other_label, other in models.items():
        if other_label == candidate:
            continue
        kwargs: _BootstrapOptions = {"samples": settings.bootstrap_samples, "confidence": settings.confidence, "seed": settings.seed}
        interval = paired_perplexity_difference(
            mine.perplexity.example_nll, other.perplexity.example_nll, mine.perplexity.example_tokens, **kwargs
        )
        comparisons.append(
            MetricComparison(
                metric="perplexity", candidate=candidate, other=other_label,
                candidate_value=mine.perplexity.perplexity, other_value=other.perplexity.perplexity,
                higher_is_better=False, interval=interval,
            )
        )
        theirs = {(answer.item_set, answer.id): answer for answer in other.answers}
        for item_set in answer_sets(mine.answers):
            pairs = [(a, theirs[(a.item_set, a.id)]) for a in mine.answers
                     if a.item_set == item_set and (a.item_set, a.id) in theirs]
            for metric in (*QUALITY_METRICS, *SAFETY_FLAGS):
                if not pairs or any(metric not in x.scores or metric not in y.scores for x, y in pairs):
                    continue
                a = [x.scores[metric] for x, _ in pairs]
                b = [y.scores[metric] for _, y in pairs]
                comparisons.append(
                    MetricComparison(
                        metric=metric, candidate=candidate, other=other_label,
                        candidate_value=sum(a) / len(a), other_value=sum(b) / len(b),
                        higher_is_better=HIGHER_IS_BETTER[metric], interval=paired_mean_difference(a, b, **kwargs),
                        item_set=item_set,
                    )
                )
    return comparisons


def answer_sets(answers: list[BenchmarkAnswer]) -> list[str]:
    """The question sets of ``answers``, in order of first appearance."""
    return list(dict.fromkeys(answer.item_set for answer in answers))


def category_breakdown(models: dict[str, ModelScores], benchmark: Benchmark) -> list[CategoryRow]:
    rows = []
    for category in benchmark.categories:
        values: dict[str, dict[str, float]] = {}
        items = 0
        for label, scores in models.items():
            chosen = [a for a in scores.answers if a.category == category and a.item_set == "benchmark"]
            items = len(chosen)
            if chosen:
                values[label] = {
                    metric: sum(a.scores[metric] for a in chosen) / len(chosen)
                    for metric in (*QUALITY_METRICS, *SAFETY_FLAGS) if all(metric in a.scores for a in chosen)
                }
        if items:
            rows.append(CategoryRow(category=category, items=items, values=values))
    return rows


def _means(answers: list[BenchmarkAnswer], metrics: tuple[str, ...]) -> dict[str, float]:
    """Mean of each metric over the answers that have it (metrics no answer has are left out)."""
    means = {}
    for metric in metrics:
        values = [a.scores[metric] for a in answers if metric in a.scores]
        if values:
            means[metric] = sum(values) / len(values)
    return means


def summarize_model(label: str, perplexity: PerplexityResult, answers: list[BenchmarkAnswer], version: str | None = None) -> ModelScores:
    by_set = {item_set: _means([a for a in answers if a.item_set == item_set], (*QUALITY_METRICS, *SAFETY_FLAGS))
              for item_set in answer_sets(answers)}
    first = next(iter(by_set.values()), {})
    return ModelScores(
        label=label, version=version, perplexity=perplexity, answers=answers,
        means={metric: first.get(metric, 0.0) for metric in QUALITY_METRICS},
        safety_counts={flag: int(sum(a.scores[flag] for a in answers)) for flag in SAFETY_FLAGS},
        means_by_set=by_set,
    )


def split_documents(eval_set: InstructionDataset) -> dict[str, str]:
    """Focus to the text of all its answers in the split: the grounding of held-out questions."""
    documents: dict[str, list[str]] = {}
    for example in eval_set.examples:
        documents.setdefault(example.focus.strip(), []).append(example.answer)
    return {focus: " ".join(texts) for focus, texts in documents.items()}


def evaluate_adapter(
    adapter_dir: Path | str,
    base: BaseModelRef,
    eval_set: InstructionDataset,
    benchmark: Benchmark,
    settings: EvaluationSettings,
    max_seq_length: int,
    compute_dtype: str = "bfloat16",
    champion: ChampionWeights | None = None,
    retriever: Retriever | None = None,
    retrieval: RetrievalSettings | None = None,
) -> EvaluationResult:
    """Base, tuned and champion on the same eval examples and benchmark questions.

    Adapters share one base model in memory (the base is measured with adapters
    disabled, the champion's adapter is loaded beside the tuned one); a full
    fine-tune is loaded as a model of its own (:class:`ModelSet`).
    """
    if settings.max_eval_examples is not None:
        eval_set = eval_set.model_copy(update={"examples": eval_set.examples[: settings.max_eval_examples]})
    benchmark = benchmark.subset(settings.generation_samples)
    heldout = heldout_benchmark(eval_set, settings.heldout_questions)
    held_out = {example.focus.strip().lower() for example in eval_set.examples}
    tokenizer = load_tokenizer(base)
    trained: dict[str, Path | str] = {"tuned": adapter_dir}
    if champion is not None:
        trained["champion"] = champion.adapter_dir
    loaded = ModelSet(base, trained, compute_dtype)
    labels = ["tuned", "base", *(["champion"] if champion is not None else [])]

    perplexities: dict[str, PerplexityResult] = {}
    answers: dict[str, list[BenchmarkAnswer]] = {}
    for label in labels:
        name = f"champion v{champion.version}" if label == "champion" and champion else label
        with loaded.active(label) as model:
            perplexities[label] = answer_perplexity(
                model, tokenizer, eval_set, max_seq_length, settings.batch_size, desc=f"perplexity {name}"
            )
            # One generation call for both sets: full batches, one padding pass.
            both = benchmark.model_copy(update={"items": [*benchmark.items, *heldout.items]})
            generated = answer_benchmark(
                model, tokenizer, both, eval_set.system_prompt, eval_set.domain_tag, settings, held_out,
                desc=f"answers {name}",
            )
            for answer in generated[len(benchmark.items):]:
                answer.item_set = HELDOUT
            answers[label] = generated
    rag_answers: dict[str, list[Any]] = {}
    out_of_corpus_answers: dict[str, list[Any]] = {}
    if retriever is not None and retrieval is not None and retrieval.eval_rag:
        out_of_corpus = [(q.id, q.question) for q in load_out_of_corpus(retrieval.eval_out_of_corpus)]
        rag_benchmark = benchmark.subset(retrieval.eval_questions)
        questions = [(item.id, item.question) for item in rag_benchmark.items]
        for label in ("base", "tuned"):
            with loaded.active(label) as model:
                replies = answer_with_retrieval(model, tokenizer, questions + out_of_corpus, retriever,
                                                eval_set.system_prompt, eval_set.domain_tag, settings, retrieval)
            rag_answers[f"{label}_rag"], out_of_corpus_answers[f"{label}_rag"] = replies[: len(questions)], replies[len(questions):]
    checker = corpus_safety_checker()
    semantic = SemanticScorer() if any(answers.values()) else None
    score_benchmark({label: a[: len(benchmark.items)] for label, a in answers.items()}, benchmark, checker, semantic)
    score_benchmark({label: a[len(benchmark.items):] for label, a in answers.items()}, heldout,
                    checker.extended(split_documents(eval_set)), semantic)
    models = {
        label: summarize_model(label, perplexities[label], answers[label], champion.version if label == "champion" and champion else None)
        for label in ["base", "tuned", *(["champion"] if champion else [])]
    }
    result = EvaluationResult(
        base=perplexities["base"],
        tuned=perplexities["tuned"],
        champion=perplexities.get("champion"),
        champion_version=champion.version if champion else None,
        models=models,
        comparisons=compare_models(models, settings),
        categories=category_breakdown(models, benchmark),
        benchmark=f"{benchmark.name} v{benchmark.version} ({len(benchmark)} items)",
        heldout=f"{heldout.name} ({len(heldout)} of {len(eval_set)} questions)" if len(heldout) else None,
        eval_fingerprint=eval_set.fingerprint(),
        rag=score_rag(benchmark.subset(retrieval.eval_questions),
                      {label: answers[label][: len(benchmark.items)] for label in ("base", "tuned")},
                      rag_answers, out_of_corpus_answers, checker, retriever, retrieval.top_k)
        if rag_answers and retriever is not None and retrieval is not None else None,
    )
    logger.info(
        "Answer perplexity on %d eval examples: base %.3f, tuned %.3f%s",
        len(eval_set), result.base.perplexity, result.tuned.perplexity,
        f", champion {result.champion.perplexity:.3f}" if result.champion else "",
    )
    return result
