"""Fixtures shared by the fast unit tests.

The base model's tokenizer is provisioned once per session: the cache under
``~/.cache/drugslm`` makes this ~0.1 s (plus ~5 s for importing transformers)
when present, ~25 s the first time.
"""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="session")
def base_model_ref() -> Any:
    from drugslm_core.config import BaseModelSettings
    from drugslm_core.modeling.base_model import provision_base_model

    return provision_base_model(BaseModelSettings())


@pytest.fixture(scope="session")
def tokenizer(base_model_ref: Any) -> Any:
    from drugslm_core.modeling.loading import load_tokenizer

    return load_tokenizer(base_model_ref)



@pytest.fixture(scope="session")
def scored_evaluation() -> Any:
    """Base and tuned answers to 8 benchmark questions, fully scored (synthetic texts, no model):
    tuned gives the reference answers, base a made-up dose with markup. ``(evaluation, models, benchmark)``."""
    from drugslm_core.config import EvaluationSettings
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

    def perplexity(per_token_nll: float, n: int = 10) -> PerplexityResult:
        nll = [per_token_nll * 20 * (1 + 0.05 * (i % 3)) for i in range(n)]
        tokens = [20] * n
        mean = sum(nll) / sum(tokens)
        return PerplexityResult(perplexity=2.718281828 ** mean, mean_nll=mean, answer_tokens=sum(tokens), examples=n,
                                example_nll=nll, example_tokens=tokens)

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
    models = {"base": summarize_model("base", perplexity(3.0), answers["base"]),
              "tuned": summarize_model("tuned", perplexity(2.0), answers["tuned"])}
    evaluation = EvaluationResult(
        base=models["base"].perplexity, tuned=models["tuned"].perplexity, models=models,
        comparisons=compare_models(models, EvaluationSettings(bootstrap_samples=200)),
        categories=category_breakdown(models, benchmark), benchmark="test v1 (8 items)", eval_fingerprint="f" * 64,
    )
    return evaluation, models, benchmark


@pytest.fixture
def training_outcome() -> Any:
    """A 3-step QLoRA outcome (no weights behind it): what the run report reads of training."""
    from drugslm_core.config import TrainingSettings
    from drugslm_core.modeling.base_model import BaseModelRef
    from drugslm_core.modeling.training import TrainingOutcome

    return TrainingOutcome(
        adapter_dir="/nonexistent", base_model=BaseModelRef(name="b", path="/b", sha256="0" * 64, source="s"),
        steps=3, train_loss=1.0, loss_history=[(1, 2.0), (2, 1.5), (3, 1.2)], runtime_s=1.0, answer_tokens=10,
        trainable_parameters=1, total_parameters=2, train_examples=4, settings=TrainingSettings(),
    )
