"""Greedy answers from a model for a few eval questions."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class GeneratedAnswer(BaseModel):
    id: str
    question: str
    reference: str
    answers: dict[str, str]
    """Model label (``base``, ``tuned``, ``champion``) to its generated answer."""


def generate_answer(model: Any, tokenizer: Any, prompt: str, max_new_tokens: int) -> str:
    import torch

    inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(next(model.parameters()).device)
    with torch.no_grad():
        output = model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    return tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()
