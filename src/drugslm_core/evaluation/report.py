"""The run's evaluation page: perplexities, loss curve, answers side by side."""

from __future__ import annotations

import base64
from html import escape

from drugslm_core.evaluation.compare import EvaluationResult
from drugslm_core.evaluation.plots import loss_curve_png
from drugslm_core.modeling.training import TrainingOutcome

_STYLE = """<style>
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1d2433;max-width:70rem}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}td,th{border:1px solid #d0d5dd;padding:.35rem .6rem;text-align:left;vertical-align:top}
th{background:#f2f4f7}.bar{height:1rem;background:#2e90fa;display:inline-block;vertical-align:middle}.num{text-align:right}
</style>"""


def render_evaluation_report(evaluation: EvaluationResult, outcome: TrainingOutcome) -> str:
    rows = [("base", evaluation.base), ("tuned", evaluation.tuned)]
    if evaluation.champion is not None:
        rows.append((f"champion v{evaluation.champion_version}", evaluation.champion))
    widest = max(result.perplexity for _, result in rows)
    bars = "".join(
        f"<tr><td>{escape(label)}</td><td class=num>{result.perplexity:.3f}</td>"
        f"<td><span class=bar style='width:{20 * result.perplexity / widest:.2f}rem'></span></td>"
        f"<td class=num>{result.answer_tokens}</td></tr>"
        for label, result in rows
    )
    curve = base64.b64encode(loss_curve_png(outcome.loss_history)).decode()
    labels = sorted({label for sample in evaluation.samples for label in sample.answers})
    samples = "".join(
        f"<tr><td>{escape(s.question)}</td><td>{escape(s.reference)}</td>"
        + "".join(f"<td>{escape(s.answers.get(label, ''))}</td>" for label in labels)
        + "</tr>"
        for s in evaluation.samples
    )
    sample_head = "".join(f"<th>{escape(label)}</th>" for label in labels)
    return f"""<!doctype html><html><head><meta charset=utf-8><title>Evaluation</title>{_STYLE}</head><body>
<h1>Evaluation: answer-token perplexity on the held-out split</h1>
<p>{evaluation.tuned.examples} eval examples (drugs unseen in training), {evaluation.tuned.answer_tokens} answer tokens.
Lower is better. Tuned is {100 * evaluation.relative_improvement:.1f}% below base.</p>
<table><tr><th>model</th><th>perplexity</th><th></th><th>answer tokens</th></tr>{bars}</table>
<h2>Training</h2>
<p>{outcome.steps} steps of QLoRA (nf4, double quantization, LoRA r={outcome.settings.lora_r} on all linear layers,
{outcome.trainable_parameters:,} trainable of {outcome.total_parameters:,} parameters) on {outcome.train_examples} examples
in {outcome.runtime_s:.0f} s.</p>
<img alt="training loss curve" src="data:image/png;base64,{curve}">
<h2>Generated answers (greedy)</h2>
<table><tr><th>question</th><th>reference</th>{sample_head}</tr>{samples}</table>
</body></html>"""
