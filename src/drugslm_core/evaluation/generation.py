"""Greedy answers from a model, in left-padded batches."""

from __future__ import annotations

import time
from typing import Any

from tqdm.auto import tqdm


def generate_answers(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    max_new_tokens: int,
    batch_size: int = 8,
    desc: str = "generate",
    progress: bool = True,
) -> list[tuple[str, float]]:
    """Greedy answers to ``prompts`` with the seconds each took (its batch's time / batch size).

    Prompts are generated ``batch_size`` at a time with left padding: on a CPU a
    decoding step costs about the same for one sequence or a dozen, so batching
    is most of the speed. Greedy decoding makes each answer independent of its
    batch mates up to padding-level numerical noise.
    """
    import torch

    device = next(model.parameters()).device
    results: list[tuple[str, float]] = []
    padding_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        starts = range(0, len(prompts), max(batch_size, 1))
        for start in tqdm(starts, desc=desc, unit="batch", disable=not progress):
            batch = prompts[start : start + max(batch_size, 1)]
            inputs = tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            began = time.perf_counter()
            with torch.no_grad():
                output = model.generate(
                    **inputs,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    use_cache=True,
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=tokenizer.eos_token_id,
                )
            seconds = (time.perf_counter() - began) / len(batch)
            texts = tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
            results.extend((text.strip(), seconds) for text in texts)
    finally:
        tokenizer.padding_side = padding_side
    return results
