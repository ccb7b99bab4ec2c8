"""Turn accepted records into chat-formatted prompt/completion examples."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Protocol

from pydantic import BaseModel, Field

from drugslm_core.data.cleaning import CONTROL_TOKENS, neutralise_control_tokens
from drugslm_core.data.records import RecordBatch


class ChatTemplater(Protocol):
    def apply_chat_template(self, conversation: Any, **kwargs: Any) -> Any: ...


class InstructionExample(BaseModel):
    id: str
    focus: str
    section: str | None
    question: str
    answer: str
    prompt: str
    """Everything up to and including the assistant header: the model is not trained on it."""
    completion: str
    """The answer as the model should produce it, with the template's end-of-turn marker."""


class InstructionDataset(BaseModel):
    examples: list[InstructionExample] = Field(default_factory=list)
    domain_tag: str = ""
    system_prompt: str = ""
    base_model_sha256: str = ""

    def __len__(self) -> int:
        return len(self.examples)

    def fingerprint(self) -> str:
        """Content hash of the examples: the same data gives the same fingerprint."""
        digest = hashlib.sha256()
        for example in self.examples:
            digest.update(json.dumps(example.model_dump(), sort_keys=True).encode())
        return digest.hexdigest()


def special_token_strings(tokenizer: Any) -> list[str]:
    """The strings this tokenizer turns into special tokens (``<|im_end|>`` …), plus the fixed list."""
    found = set(CONTROL_TOKENS)
    found.update(t for t in getattr(tokenizer, "all_special_tokens", None) or [] if isinstance(t, str))
    for token in (getattr(tokenizer, "added_tokens_decoder", None) or {}).values():
        if getattr(token, "special", False) and getattr(token, "content", None):
            found.add(token.content)
    return sorted(t for t in found if len(t) > 1)


def conversation(question: str, system_prompt: str, domain_tag: str) -> list[dict[str, str]]:
    user = f"{domain_tag} {question.strip()}" if domain_tag else question.strip()
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return messages + [{"role": "user", "content": user}]


def render_prompt(tokenizer: ChatTemplater, question: str, system_prompt: str, domain_tag: str) -> str:
    """The prompt string a model sees at inference time for this question."""
    return tokenizer.apply_chat_template(
        conversation(question, system_prompt, domain_tag), tokenize=False, add_generation_prompt=True
    )


def build_instruction_dataset(
    batch: RecordBatch,
    tokenizer: ChatTemplater,
    system_prompt: str,
    domain_tag: str,
    base_model_sha256: str = "",
) -> InstructionDataset:
    """Render each record with the base model's chat template into prompt + completion.

    The tokenizer's own special-token strings inside a question or answer are neutralised
    (``<|im_end|>`` → ``< |im_end| >``) so that text can never end a turn or open one."""
    examples = []
    specials = special_token_strings(tokenizer)
    for record in batch.records:
        if record.id is None or record.question is None or record.answer is None:
            raise ValueError(f"record {record.locator} in {record.source} was not validated")
        question, _ = neutralise_control_tokens(record.question, specials)
        answer, _ = neutralise_control_tokens(record.answer.strip(), specials)
        messages = conversation(question, system_prompt, domain_tag)
        prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(
            messages + [{"role": "assistant", "content": answer}], tokenize=False
        )
        if not full.startswith(prompt):
            raise ValueError("the chat template does not render the prompt as a prefix of the dialogue")
        examples.append(
            InstructionExample(
                id=record.id,
                focus=record.focus,
                section=record.section,
                question=question.strip(),
                answer=answer,
                prompt=prompt,
                completion=full[len(prompt):],
            )
        )
    return InstructionDataset(
        examples=examples, domain_tag=domain_tag, system_prompt=system_prompt, base_model_sha256=base_model_sha256
    )
