"""The run report renders every section from a (synthetic but fully scored) evaluation."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from drugslm_core.config import EvaluationSettings, TrainingSettings
from drugslm_core.evaluation.benchmark import BenchmarkAnswer, load_benchmark
from drugslm_core.evaluation.compare import (
    EvaluationResult,
    category_breakdown,
    compare_models,
    score_benchmark,
    summarize_model,
)
from drugslm_core.evaluation.metrics import SemanticScorer
from drugslm_core.evaluation.perplexity import PerplexityResult
from drugslm_core.evaluation.promotion import decide_for_evaluation
from drugslm_core.evaluation.report import render_evaluation_report
from drugslm_core.modeling.base_model import BaseModelRef
from drugslm_core.modeling.training import TrainingOutcome


def _perplexity(per_token_nll: float, n: int = 10) -> PerplexityResult:
    nll = [per_token_nll * 20 * (1 + 0.05 * (i % 3)) for i in range(n)]
    tokens = [20] * n
    mean = sum(nll) / sum(tokens)
    return PerplexityResult(perplexity=2.718281828 ** mean, mean_nll=mean, answer_tokens=sum(tokens), examples=n,
                            example_nll=nll, example_tokens=tokens)


def test_report_renders_decision_intervals_categories_and_answers():
    benchmark = load_benchmark().subset(8)
    answers = {
        "base": [BenchmarkAnswer(id=i.id, category=i.category, difficulty=i.difficulty, question=i.question,
                                 response="The usual dose is 5 grams <b>.", time_seconds=0.5, timestamp="t",
                                 drug=i.drug, held_out=False) for i in benchmark.items],
        "tuned": [BenchmarkAnswer(id=i.id, category=i.category, difficulty=i.difficulty, question=i.question,
                                  response=i.reference_answer, time_seconds=0.5, timestamp="t", drug=i.drug,
                                  held_out=True) for i in benchmark.items],
    }
    score_benchmark(answers, benchmark, semantic=SemanticScorer())
    models = {"base": summarize_model("base", _perplexity(3.0), answers["base"]),
              "tuned": summarize_model("tuned", _perplexity(2.0), answers["tuned"])}
    evaluation = EvaluationResult(
        base=models["base"].perplexity, tuned=models["tuned"].perplexity, models=models,
        comparisons=compare_models(models, EvaluationSettings(bootstrap_samples=200)),
        categories=category_breakdown(models, benchmark), benchmark="test v1 (8 items)", eval_fingerprint="f" * 64,
    )
    assert models["tuned"].means["rouge_l"] > 0.99 and models["base"].safety_counts["invented_doses"] >= 1
    decision = decide_for_evaluation(evaluation)
    assert decision.promote is True  # far better and no safety flag raised by tuned
    outcome = TrainingOutcome(
        adapter_dir="/nonexistent", base_model=BaseModelRef(name="b", path="/b", sha256="0" * 64, source="s"),
        steps=3, train_loss=1.0, loss_history=[(1, 2.0), (2, 1.5), (3, 1.2)], runtime_s=1.0, answer_tokens=10,
        trainable_parameters=1, total_parameters=2, train_examples=4, settings=TrainingSettings(),
    )
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
