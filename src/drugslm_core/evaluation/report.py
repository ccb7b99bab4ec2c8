"""The run report: one self-contained HTML page per training run.

Shown in the ZenML dashboard (the evaluate step returns it as ``HTMLString``) and
logged to the MLflow run as ``report.html``. Sections: the gate's decision and
its checks, metric bars with paired confidence intervals, the training-loss
curve, a per-category table and benchmark answers side by side.
"""

from __future__ import annotations

import base64
from html import escape

from drugslm_core.evaluation.compare import EvaluationResult, MetricComparison
from drugslm_core.evaluation.metrics import QUALITY_METRICS
from drugslm_core.evaluation.plots import loss_curve_png
from drugslm_core.evaluation.promotion import GateCheck, PromotionDecision, flag_rate
from drugslm_core.evaluation.rag import render_rag_section
from drugslm_core.evaluation.safety import FLAG_LABELLED_QUALITY, SAFETY_FLAGS
from drugslm_core.modeling.training import TrainingOutcome

_STYLE = """<style>
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1d2433;max-width:78rem}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}td,th{border:1px solid #d0d5dd;padding:.35rem .6rem;text-align:left;vertical-align:top}
th{background:#f2f4f7}.num{text-align:right;font-variant-numeric:tabular-nums}
.bar{height:.9rem;background:#2e90fa;display:inline-block;vertical-align:middle}
.promote{background:#ecfdf3;border:1px solid #32d583;padding:.6rem 1rem}.keep{background:#fff6ed;border:1px solid #fd853a;padding:.6rem 1rem}
.pass{color:#067647}.fail{color:#b42318;font-weight:600}.small{font-size:.85rem;color:#475467}
</style>"""

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


def _model_value(evaluation: EvaluationResult, label: str, metric: str, item_set: str | None) -> float | None:
    scores = evaluation.models[label]
    if metric == "perplexity":
        return scores.perplexity.perplexity
    return scores.means_by_set.get(item_set or "", {}).get(metric)


def _interval_svg(comparison: MetricComparison, width: int = 220, height: int = 22) -> str:
    """The improvement interval on a symmetric axis around zero (right of the line: candidate better)."""
    point, low, high = comparison.improvement
    reach = max(abs(low), abs(high), abs(point), 1e-9) * 1.1
    x = lambda value: width / 2 + value / reach * (width / 2 - 6)  # noqa: E731
    colour = "#067647" if low > 0 else "#b42318" if high < 0 else "#667085"
    return (
        f"<svg width={width} height={height} role=img aria-label='interval'>"
        f"<line x1={width / 2} y1=2 x2={width / 2} y2={height - 2} stroke='#98a2b3' stroke-dasharray='3 2'/>"
        f"<line x1={x(low):.1f} y1={height / 2} x2={x(high):.1f} y2={height / 2} stroke='{colour}' stroke-width=3/>"
        f"<circle cx={x(point):.1f} cy={height / 2} r=4 fill='{colour}'/></svg>"
    )


def _metric_section(evaluation: EvaluationResult) -> str:
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
        cells = "".join(
            "<td></td>" if values[label] is None else
            f"<td class=num>{values[label]:.3f}<br><span class=bar style='width:{8 * values[label] / widest:.2f}rem'></span></td>"
            for label in labels
        )
        intervals = ""
        for other in labels:
            if other == "tuned":
                continue
            comparison = evaluation.comparison(metric, other, item_set=item_set)
            if comparison is None:
                intervals += "<td></td>"
                continue
            point, low, high = comparison.improvement
            intervals += (
                f"<td class=num>{point:+.3f} [{low:+.3f}, {high:+.3f}]<br>{_interval_svg(comparison)}</td>"
            )
        source = "eval split reference answers" if item_set is None else _SETS.get(item_set, item_set)
        share = " (share)" if metric in SAFETY_FLAGS else ""
        rows.append(f"<tr><td>{escape(_LABELS[metric])}{share}</td><td>{escape(source)}</td>{cells}{intervals}</tr>")
    head = "<th>question set</th>" + "".join(f"<th>{escape(label)}</th>" for label in labels)
    confidence = next((round(100 * c.interval.confidence) for c in evaluation.comparisons), 95)
    head += "".join(
        f"<th>tuned vs {escape(other)}: improvement [{confidence}% CI]</th>" for other in labels if other != "tuned"
    )
    return f"<table><tr><th>metric</th>{head}</tr>{''.join(rows)}</table>"


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


def _decision_section(decision: PromotionDecision | None) -> str:
    if decision is None:
        return ""
    checks = "".join(
        f"<tr><td class={'pass' if c.passed else 'fail'}>{'pass' if c.passed else 'FAIL'}</td>"
        f"<td>{escape(c.name)}</td><td class=num>{_number(c.candidate_value, c.kind)}</td>"
        f"<td class=num>{_number(c.other_value, c.kind)}</td><td>{escape(c.test)}</td>"
        f"<td class=num>{escape(_evidence(c))}</td><td>{escape(c.detail)}</td></tr>"
        for c in decision.checks
    )
    css = "promote" if decision.promote else "keep"
    return (
        f"<div class={css}><strong>Gate decision:</strong> {escape(decision.summary)}</div>"
        f"<p class=small>Primary metric: {escape(decision.primary_metric)}. The candidate must beat each contender with the "
        "improvement's paired-bootstrap interval above the margin; no safety flag may be significantly more frequent than "
        "a contender's on the same questions (exact McNemar, one-sided), nor above its absolute ceiling. Safety checks pool "
        "every generated answer (bundled benchmark and held-out questions).</p>"
        "<table><tr><th></th><th>check</th><th>tuned</th><th>contender / ceiling</th><th>test</th>"
        f"<th>p-value or interval</th><th>detail</th></tr>{checks}</table>"
    )


def _safety_section(evaluation: EvaluationResult) -> str:
    """Each flag's rate per model and question set with its 95% Wilson interval, and the flag's
    precision / recall on the hand-labelled answers."""
    labels = list(evaluation.models)
    rows = []
    for flag in SAFETY_FLAGS:
        quality = FLAG_LABELLED_QUALITY[flag]
        for item_set in evaluation.models["tuned"].means_by_set:
            cells = ""
            for label in labels:
                chosen = [a for a in evaluation.models[label].answers if a.item_set == item_set]
                rate = flag_rate(int(sum(a.scores[flag] for a in chosen)), len(chosen))
                cells += f"<td class=num>{escape(rate.text())}</td>"
            rows.append(
                f"<tr><td>{escape(_LABELS[flag])}</td><td class=num>{quality['precision']:.2f}</td>"
                f"<td class=num>{quality['recall']:.2f}</td><td>{escape(_SETS.get(item_set, item_set))}</td>{cells}</tr>"
            )
    head = "".join(f"<th>{escape(label)}</th>" for label in labels)
    return (
        "<p class=small>Precision and recall of each flag against hand labels of "
        f"{FLAG_LABELLED_QUALITY['answers']:.0f} real base and tuned answers (tests/data/safety_labels.jsonl).</p>"
        f"<table><tr><th>flag</th><th>precision</th><th>recall</th><th>question set</th>{head}</tr>{''.join(rows)}</table>"
    )


def _category_section(evaluation: EvaluationResult) -> str:
    if not evaluation.categories:
        return "<p>No benchmark answers in this run.</p>"
    labels = list(evaluation.models)
    head = "".join(f"<th>{escape(metric)}<br>{escape(label)}</th>" for metric in QUALITY_METRICS for label in labels)
    body = "".join(
        f"<tr><td>{escape(row.category)}</td><td class=num>{row.items}</td>"
        + "".join(
            f"<td class=num>{row.values.get(label, {}).get(metric, float('nan')):.3f}</td>"
            for metric in QUALITY_METRICS for label in labels
        )
        + "</tr>"
        for row in evaluation.categories
    )
    return f"<table><tr><th>category</th><th>items</th>{head}</tr>{body}</table>"


def _examples_section(evaluation: EvaluationResult, limit: int) -> str:
    labels = list(evaluation.models)
    by_label = {label: {a.id: a for a in scores.answers} for label, scores in evaluation.models.items()}
    rows = []
    for answer in evaluation.models["tuned"].answers[:limit]:
        cells = ""
        for label in labels:
            mine = by_label[label].get(answer.id)
            if mine is None:
                cells += "<td></td>"
                continue
            flags = [flag for flag in SAFETY_FLAGS if mine.scores.get(flag)]
            cells += (
                f"<td>{escape(mine.response)}<div class=small>ROUGE-L {mine.scores.get('rouge_l', 0):.2f} · "
                f"sim {mine.scores.get('semantic_similarity', 0):.2f} · facts {mine.scores.get('key_fact_recall', 0):.2f}"
                + (f" · <span class=fail>{escape(', '.join(flags))}</span>" if flags else "")
                + "</div></td>"
            )
        held = "" if answer.held_out is None else (" (held-out drug)" if answer.held_out else " (drug seen in training)")
        held = f" [{_SETS.get(answer.item_set, answer.item_set)}]" + held
        rows.append(
            f"<tr><td><b>{escape(answer.id)}</b> {escape(answer.category)}{escape(held)}<br>{escape(answer.question)}</td>{cells}</tr>"
        )
    head = "".join(f"<th>{escape(label)}</th>" for label in labels)
    return f"<table><tr><th>question</th>{head}</tr>{''.join(rows)}</table>"


def render_evaluation_report(
    evaluation: EvaluationResult,
    outcome: TrainingOutcome,
    decision: PromotionDecision | None = None,
    example_limit: int = 12,
) -> str:
    curve = base64.b64encode(loss_curve_png(outcome.loss_history, eval_history=outcome.eval_history, best_step=outcome.best_step)).decode()
    tuned = evaluation.models["tuned"]
    return f"""<!doctype html><html><head><meta charset=utf-8><title>drugslm run report</title>{_STYLE}</head><body>
<h1>drugslm run report</h1>
<p>Perplexity over the answer tokens of {evaluation.tuned.examples} eval examples (drugs held out of training,
{evaluation.tuned.answer_tokens} tokens); {len(tuned.answers)} questions answered greedily by each model: benchmark
{escape(evaluation.benchmark)}{escape("; " + evaluation.heldout + ", the split's answers as references" if evaluation.heldout else "")}.
Each row says which set its figure comes from. Intervals are paired bootstrap intervals of tuned minus the other model, oriented so that a positive
improvement means tuned is better. Not medical advice.</p>
{_decision_section(decision)}
<h2>Metrics</h2>
{_metric_section(evaluation)}
<h2>Safety flags</h2>
{_safety_section(evaluation) if tuned.answers else "<p>No generated answers in this run.</p>"}
<h2>Retrieval (base, tuned, with and without RAG)</h2>
{render_rag_section(evaluation.rag)}
<h2>Training</h2>
<p>{outcome.steps} steps of QLoRA (nf4, double quantization, LoRA r={outcome.settings.lora_r} on all linear layers,
{outcome.trainable_parameters:,} trainable of {outcome.total_parameters:,} parameters) on {outcome.train_examples} examples
in {outcome.runtime_s:.0f} s.</p>
<img alt="training loss curve" src="data:image/png;base64,{curve}">
<h2>Per category (benchmark)</h2>
{_category_section(evaluation)}
<h2>Answers side by side</h2>
{_examples_section(evaluation, example_limit)}
</body></html>"""
