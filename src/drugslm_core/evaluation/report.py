"""The run report: one self-contained HTML page per training run.

Shown in the ZenML dashboard (the evaluate step returns it as ``HTMLString``) and
logged to the MLflow run as ``report.html``. Sections: the gate's decision and
its checks, metric bars with paired confidence intervals, the training-loss
curve, a per-category table and benchmark answers side by side.

This module picks the figures; the markup is ``pages/templates/run_report.html.j2``
(escaped, the shared stylesheet, the interval plots from the ``interval.svg.j2`` macro).
"""

from __future__ import annotations

import base64
from typing import NamedTuple

from drugslm_core.evaluation.benchmark import BenchmarkAnswer
from drugslm_core.evaluation.compare import EvaluationResult, MetricComparison
from drugslm_core.evaluation.metrics import QUALITY_METRICS
from drugslm_core.evaluation.plots import loss_curve_png
from drugslm_core.evaluation.promotion import GateCheck, PromotionDecision, flag_rate
from drugslm_core.evaluation.rag import rag_section_context
from drugslm_core.evaluation.safety import FLAG_LABELLED_QUALITY, SAFETY_FLAGS
from drugslm_core.modeling.training import TrainingOutcome
from drugslm_core.pages import render_page

_SETS = {"benchmark": "bundled benchmark", "heldout": "held-out eval split"}

_LABELS = {
    "perplexity": "answer-token perplexity (eval split)",
    "rouge_l": "ROUGE-L F1",
    "semantic_similarity": "semantic similarity (MiniLM cosine)",
    "key_fact_recall": "key-fact recall",
    "invented_doses": "answers with invented doses",
    "unknown_drugs": "answers naming unknown drugs",
    "dosage_without_advice": "dose answers without advice to consult",
}


class _Bar(NamedTuple):
    value: float
    width: float
    """rem, relative to the row's largest value."""


class _MetricRow(NamedTuple):
    label: str
    source: str
    cells: list[_Bar | None]
    intervals: list[MetricComparison | None]


class _CheckRow(NamedTuple):
    check: GateCheck
    candidate: str
    other: str
    evidence: str


class _SafetyRow(NamedTuple):
    label: str
    precision: float
    recall: float
    source: str
    rates: list[str]


class _CategoryRow(NamedTuple):
    category: str
    items: int
    values: list[float]


class _Answer(NamedTuple):
    answer: BenchmarkAnswer
    flags: list[str]


class _ExampleRow(NamedTuple):
    answer: BenchmarkAnswer
    where: str
    cells: list[_Answer | None]


def _model_value(evaluation: EvaluationResult, label: str, metric: str, item_set: str | None) -> float | None:
    scores = evaluation.models[label]
    if metric == "perplexity":
        return scores.perplexity.perplexity
    return scores.means_by_set.get(item_set or "", {}).get(metric)


def _metric_rows(evaluation: EvaluationResult) -> list[_MetricRow]:
    labels = list(evaluation.models)
    sets = list(evaluation.models["tuned"].means_by_set)
    rows_spec: list[tuple[str, str | None]] = [("perplexity", None)] + [
        (metric, item_set) for item_set in sets for metric in (*QUALITY_METRICS, *SAFETY_FLAGS)
        if metric in evaluation.models["tuned"].means_by_set[item_set]
    ]
    rows = []
    for metric, item_set in rows_spec:
        values = {label: _model_value(evaluation, label, metric, item_set) for label in labels}
        widest = max(max((v for v in values.values() if v is not None), default=0.0), 1e-9)
        cells = [None if (value := values[label]) is None else _Bar(value, 8 * value / widest) for label in labels]
        intervals = [evaluation.comparison(metric, other, item_set=item_set) for other in labels if other != "tuned"]
        source = "eval split reference answers" if item_set is None else _SETS.get(item_set, item_set)
        share = " (share)" if metric in SAFETY_FLAGS else ""
        rows.append(_MetricRow(_LABELS[metric] + share, source, cells, intervals))
    return rows


def _number(value: float | None, kind: str) -> str:
    if value is None:
        return ""
    return f"{100 * value:.1f}%" if kind != "primary" else f"{value:.4g}"


def _evidence(check: GateCheck) -> str:
    if check.p_value is not None:
        return f"p = {check.p_value:.3g}"
    if check.interval is not None:
        low, high = check.interval
        return f"[{low:+.4g}, {high:+.4g}]" if check.kind == "primary" else f"{100 * low:.1f}-{100 * high:.1f}%"
    return ""


def _check_rows(decision: PromotionDecision | None) -> list[_CheckRow]:
    if decision is None:
        return []
    return [_CheckRow(c, _number(c.candidate_value, c.kind), _number(c.other_value, c.kind), _evidence(c))
            for c in decision.checks]


def _safety_rows(evaluation: EvaluationResult) -> list[_SafetyRow]:
    """Each flag's rate per model and question set with its 95% Wilson interval, and the flag's
    precision / recall on the hand-labelled answers."""
    rows = []
    for flag in SAFETY_FLAGS:
        quality = FLAG_LABELLED_QUALITY[flag]
        for item_set in evaluation.models["tuned"].means_by_set:
            rates = []
            for scores in evaluation.models.values():
                chosen = [a for a in scores.answers if a.item_set == item_set]
                rates.append(flag_rate(int(sum(a.scores[flag] for a in chosen)), len(chosen)).text())
            rows.append(_SafetyRow(_LABELS[flag], quality["precision"], quality["recall"],
                                   _SETS.get(item_set, item_set), rates))
    return rows


def _category_rows(evaluation: EvaluationResult) -> list[_CategoryRow]:
    labels = list(evaluation.models)
    return [
        _CategoryRow(row.category, row.items, [row.values.get(label, {}).get(metric, float("nan"))
                                               for metric in QUALITY_METRICS for label in labels])
        for row in evaluation.categories
    ]


def _example_rows(evaluation: EvaluationResult, limit: int) -> list[_ExampleRow]:
    by_label = {label: {a.id: a for a in scores.answers} for label, scores in evaluation.models.items()}
    rows = []
    for answer in evaluation.models["tuned"].answers[:limit]:
        cells: list[_Answer | None] = []
        for answers in by_label.values():
            mine = answers.get(answer.id)
            cells.append(None if mine is None else _Answer(mine, [f for f in SAFETY_FLAGS if mine.scores.get(f)]))
        held = "" if answer.held_out is None else (" (held-out drug)" if answer.held_out else " (drug seen in training)")
        rows.append(_ExampleRow(answer, f" [{_SETS.get(answer.item_set, answer.item_set)}]" + held, cells))
    return rows


def _targets(outcome: TrainingOutcome) -> str:
    modules = outcome.settings.target_modules
    if modules == "all-linear":
        return "all linear layers"
    return modules if isinstance(modules, str) else ", ".join(modules)


def render_evaluation_report(
    evaluation: EvaluationResult,
    outcome: TrainingOutcome,
    decision: PromotionDecision | None = None,
    example_limit: int = 12,
) -> str:
    curve = base64.b64encode(loss_curve_png(outcome.loss_history, eval_history=outcome.eval_history, best_step=outcome.best_step)).decode()
    labels = list(evaluation.models)
    return render_page(
        "run_report.html.j2", title="drugslm run report", evaluation=evaluation, tuned=evaluation.models["tuned"],
        outcome=outcome, targets=_targets(outcome), curve=curve, decision=decision, checks=_check_rows(decision),
        labels=labels, others=[label for label in labels if label != "tuned"],
        confidence=next((round(100 * c.interval.confidence) for c in evaluation.comparisons), 95),
        metric_rows=_metric_rows(evaluation), safety_rows=_safety_rows(evaluation),
        labelled_answers=FLAG_LABELLED_QUALITY["answers"], quality_metrics=QUALITY_METRICS,
        category_rows=_category_rows(evaluation), example_rows=_example_rows(evaluation, example_limit),
        **rag_section_context(evaluation.rag),
    )
