"""Answer-token perplexity: exp(mean negative log-likelihood over answer tokens)."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel
from tqdm.auto import tqdm

from drugslm_core.data.formatting import InstructionDataset
from drugslm_core.modeling.tokenization import IGNORE_INDEX, encode_example


class PerplexityResult(BaseModel):
    perplexity: float
    mean_nll: float
    answer_tokens: int
    examples: int
    example_nll: list[float] = []
    """Per example: the sum of answer-token negative log-likelihoods (for paired bootstraps)."""
    example_tokens: list[int] = []
    """Per example: its answer-token count."""


def answer_perplexity(
    model: Any,
    tokenizer: Any,
    dataset: InstructionDataset,
    max_length: int,
    batch_size: int = 8,
    desc: str = "perplexity",
) -> PerplexityResult:
    """Perplexity of ``model`` on the completions of ``dataset``, prompt tokens excluded."""
    import torch
    import torch.nn.functional as F
    from transformers import DataCollatorForSeq2Seq

    if len(dataset) == 0:
        raise ValueError("cannot compute perplexity on an empty dataset")
    encoded = [encode_example(tokenizer, e.prompt, e.completion, max_length) for e in dataset.examples]
    collator = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE_INDEX)
    device = next(model.parameters()).device
    example_nll: list[float] = []
    example_tokens: list[int] = []
    model.eval()
    with torch.no_grad():
        for start in tqdm(range(0, len(encoded), batch_size), desc=desc, unit="batch"):
            batch = collator(encoded[start : start + batch_size])
            logits = model(
                input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)
            ).logits.float()
            labels = batch["labels"].to(device)[:, 1:]
            nll = F.cross_entropy(
                logits[:, :-1].reshape(-1, logits.size(-1)),
                labels.reshape(-1),
                ignore_index=IGNORE_INDEX,
                reduction="none",
            ).view(labels.shape)
            example_nll.extend(float(value) for value in nll.sum(dim=1))
            example_tokens.extend(int(value) for value in (labels != IGNORE_INDEX).sum(dim=1))
    total_nll, total_tokens = sum(example_nll), sum(example_tokens)
    mean_nll = total_nll / total_tokens
    return PerplexityResult(
        perplexity=math.exp(mean_nll), mean_nll=mean_nll, answer_tokens=total_tokens, examples=len(encoded),
        example_nll=example_nll, example_tokens=example_tokens,
    )
