"""The context put into the prompt: retrieved chunks, numbered, within a token budget, with their
citations; and the fixed message used when retrieval abstains."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel

from drugslm_core.data.feedback_records import Citation
from drugslm_core.retrieval.search import Hit

CONTEXT_INSTRUCTION = (
    "Answer using only the leaflet excerpts below. Quote doses exactly as written. "
    "If the excerpts do not answer the question, say so."
)


class AssembledContext(BaseModel):
    text: str
    """Numbered excerpts (``[1] Drug, section: text``), empty when nothing fits."""
    citations: list[Citation]
    """One per excerpt in the text, in the same order."""
    tokens: int


def approximate_tokens(text: str) -> int:
    """About 4 characters a token (English, BPE): for callers without a tokenizer at hand."""
    return max(1, len(text) // 4)


def assemble_context(
    hits: list[Hit], budget_tokens: int, count_tokens: Callable[[str], int] = approximate_tokens
) -> AssembledContext:
    """Excerpts in rank order while they fit ``budget_tokens``; an excerpt that does not fit is
    left out whole (a dose cut in half is worse than no dose), the next smaller one may still fit."""
    blocks: list[str] = []
    citations: list[Citation] = []
    used = 0
    for hit in hits:
        chunk = hit.chunk
        block = f"[{len(blocks) + 1}] {chunk.drug}, {chunk.section.replace('_', ' ')}: {chunk.text}"
        cost = count_tokens(block + "\n")
        if used + cost > budget_tokens:
            continue
        blocks.append(block)
        citations.append(chunk.citation())
        used += cost
    return AssembledContext(text="\n".join(blocks), citations=citations, tokens=used)


def grounded_question(question: str, context: AssembledContext) -> str:
    """The user turn the model sees: instruction, excerpts, then the question."""
    if not context.text:
        return question
    return f"{CONTEXT_INSTRUCTION}\n\n{context.text}\n\nQuestion: {question}"


def abstention_message(drugs: list[str]) -> str:
    """The fixed, honest answer when retrieval finds nothing: what the assistant has leaflets for."""
    listed = ", ".join(drugs) if drugs else "none"
    return (
        "I can't answer that from the drug leaflets I have, so I won't guess. "
        f"I have leaflets for: {listed}. Please ask a pharmacist or doctor about other medicines."
    )
