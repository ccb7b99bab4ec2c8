"""Evaluate base, tuned and (if any) champion adapters on the same eval split."""

from __future__ import annotations

import logging
from pathlib import Path

from pydantic import BaseModel
from tqdm.auto import tqdm

from drugslm_core.config import EvaluationSettings
from drugslm_core.data.formatting import InstructionDataset
from drugslm_core.evaluation.generation import GeneratedAnswer, generate_answer
from drugslm_core.evaluation.perplexity import PerplexityResult, answer_perplexity
from drugslm_core.modeling.base_model import BaseModelRef
from drugslm_core.modeling.loading import load_tokenizer, load_with_adapter

logger = logging.getLogger(__name__)


class RegisteredAdapter(BaseModel):
    """A registered model version (e.g. the one behind @champion) with its adapter on disk."""

    version: str
    run_id: str | None
    adapter_dir: str
    tags: dict[str, str] = {}


class EvaluationResult(BaseModel):
    base: PerplexityResult
    tuned: PerplexityResult
    champion: PerplexityResult | None = None
    champion_version: str | None = None
    samples: list[GeneratedAnswer]
    eval_fingerprint: str

    @property
    def relative_improvement(self) -> float:
        """Share by which tuned perplexity is below base perplexity."""
        return 1.0 - self.tuned.perplexity / self.base.perplexity


def evaluate_adapter(
    adapter_dir: Path | str,
    base: BaseModelRef,
    eval_set: InstructionDataset,
    settings: EvaluationSettings,
    max_seq_length: int,
    compute_dtype: str = "bfloat16",
    champion: RegisteredAdapter | None = None,
) -> EvaluationResult:
    """Answer-token perplexity of base, tuned and champion, plus a few generated answers.

    All three share one 4-bit base model in memory: the base is measured with
    adapters disabled, the champion's adapter is loaded beside the tuned one.
    """
    if settings.max_eval_examples is not None:
        eval_set = eval_set.model_copy(update={"examples": eval_set.examples[: settings.max_eval_examples]})
    tokenizer = load_tokenizer(base)
    model = load_with_adapter(base, adapter_dir, compute_dtype)

    def measure(label: str) -> PerplexityResult:
        return answer_perplexity(model, tokenizer, eval_set, max_seq_length, settings.batch_size, desc=label)

    tuned = measure("tuned")
    with model.disable_adapter():
        base_result = measure("base")
    champion_result = None
    if champion is not None:
        model.load_adapter(champion.adapter_dir, adapter_name="champion")
        model.set_adapter("champion")
        champion_result = measure(f"champion v{champion.version}")
        model.set_adapter("default")

    samples = []
    for example in tqdm(eval_set.examples[: settings.generation_samples], desc="generate", unit="answer"):
        answers = {"tuned": generate_answer(model, tokenizer, example.prompt, settings.max_new_tokens)}
        with model.disable_adapter():
            answers["base"] = generate_answer(model, tokenizer, example.prompt, settings.max_new_tokens)
        samples.append(
            GeneratedAnswer(id=example.id, question=example.question, reference=example.answer, answers=answers)
        )
    logger.info(
        "Answer perplexity on %d eval examples: base %.3f, tuned %.3f%s",
        len(eval_set), base_result.perplexity, tuned.perplexity,
        f", champion {champion_result.perplexity:.3f}" if champion_result else "",
    )
    return EvaluationResult(
        base=base_result,
        tuned=tuned,
        champion=champion_result,
        champion_version=champion.version if champion else None,
        samples=samples,
        eval_fingerprint=eval_set.fingerprint(),
    )
