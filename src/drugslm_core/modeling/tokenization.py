"""Token ids and loss labels for prompt/completion examples."""

from __future__ import annotations

from typing import Any, Protocol

IGNORE_INDEX = -100
"""Label value PyTorch's cross-entropy ignores: prompt tokens carry it, so loss is on answers only."""


class Tokenizer(Protocol):
    def __call__(self, text: str, **kwargs: Any) -> Any: ...


def encode_example(tokenizer: Tokenizer, prompt: str, completion: str, max_length: int) -> dict[str, list[int]]:
    """``input_ids`` of prompt + completion, ``labels`` masking every prompt token.

    Truncation cuts the end of the completion, never the prompt, so that every
    kept label is an answer token the model is asked to produce.

    Used for training (``modeling/training.py``, pre-tokenized rows packed by TRL) and
    for per-example answer NLL (``evaluation/perplexity.py``, which TRL does not offer).
    TRL's own prompt/completion tokenisation (``completion_only_loss=True``) gives the
    same ids and mask but appends an EOS (``<|im_end|>``) after our completion's
    ``<|im_end|>\\n``, a token the model would be trained on; and it silently drops an
    example whose prompt fills ``max_length`` where this raises
    (tests/unit/test_trl_agreement.py).
    """
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    if len(prompt_ids) >= max_length:
        raise ValueError(f"prompt is {len(prompt_ids)} tokens, not below max_seq_length={max_length}")
    completion_ids = completion_ids[: max_length - len(prompt_ids)]
    input_ids = prompt_ids + completion_ids
    return {
        "input_ids": input_ids,
        "attention_mask": [1] * len(input_ids),
        "labels": [IGNORE_INDEX] * len(prompt_ids) + completion_ids,
    }
