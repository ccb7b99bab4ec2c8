"""The run report renders every section from a (synthetic but fully scored) evaluation."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from drugslm_core.config import TrainingSettings
from drugslm_core.evaluation.promotion import decide_for_evaluation
from drugslm_core.evaluation.report import render_evaluation_report


def test_report_renders_decision_intervals_categories_and_answers(scored_evaluation, training_outcome):
    evaluation, models, benchmark = scored_evaluation
    assert models["tuned"].means["rouge_l"] > 0.99 and models["base"].safety_counts["invented_doses"] >= 1
    decision = decide_for_evaluation(evaluation)
    assert decision.promote is True  # far better and no safety flag raised by tuned
    outcome = training_outcome
    html = render_evaluation_report(evaluation, outcome, decision)

    parser = HTMLParser()
    parser.feed(html)  # well-formed enough to parse
    assert "Gate decision:" in html and "promote to champion" in html
    assert html.count("<svg") == 7  # one interval per metric (perplexity, 3 quality, 3 safety) vs base
    assert "data:image/png;base64," in html
    for category in {item.category for item in benchmark.items}:
        assert category in html
    assert "5 grams &lt;b&gt;." in html  # answers are escaped
    assert "invented_doses" in html and "held-out drug" in html
    assert re.search(r"answer-token perplexity \(eval split\)</td><td>eval split reference answers</td><td class=num>\d+\.\d{3}", html)
    # every check of the decision is listed with both values, its test and its evidence
    assert "exact McNemar" in html and "invented_doses ceiling" in html and "p = " in html
    assert "Safety flags" in html and "95% CI" in html and "bundled benchmark" in html


@pytest.mark.parametrize(("mode", "named", "not_named"), [
    ("qlora", "steps of\nQLoRA (nf4, double quantization, LoRA r=8 on all linear layers,", "full fine-tuning"),
    ("lora", "steps of\nLoRA (r=8 on q_proj, v_proj, base in bfloat16,", "QLoRA"),
    ("full", "steps of\nfull fine-tuning (every weight trained,", "LoRA"),
])
def test_training_paragraph_names_the_runs_mode(scored_evaluation, training_outcome, mode, named, not_named):
    evaluation, _, _ = scored_evaluation
    targets = "all-linear" if mode == "qlora" else ["q_proj", "v_proj"]
    outcome = training_outcome.model_copy(update={
        "mode": mode, "settings": TrainingSettings(mode=mode, lora_r=8, target_modules=targets)})
    html = render_evaluation_report(evaluation, outcome)
    training = html[html.index("<h2>Training</h2>"):html.index("<img")]
    assert named in training and not_named not in training
    assert "1 trainable of 2 parameters) on 4 examples" in training
