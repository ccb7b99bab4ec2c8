"""Prompt/completion rendering and loss labels with the base model's real tokenizer
(drugslm_core.data.formatting, drugslm_core.modeling.tokenization)."""

from __future__ import annotations

import pytest

from drugslm_core.config import DataSettings
from drugslm_core.data.formatting import build_instruction_dataset, render_prompt
from drugslm_core.data.records import QARecord, RecordBatch
from drugslm_core.modeling.tokenization import IGNORE_INDEX, encode_example

ASSISTANT_HEADER = "<|im_start|>assistant\n"
END_OF_TURN = "<|im_end|>"
SYSTEM_PROMPT = DataSettings().system_prompt
DOMAIN_TAG = DataSettings().domain_tag
QUESTION = "What are the side effects of metformin?"
ANSWER = (
    "Common side effects of metformin include nausea, diarrhoea, stomach pain and a metallic taste. "
    "They usually settle after a few weeks; taking the tablets with meals helps."
)


def record(id: str = "r1", question: str | None = QUESTION, answer: str | None = ANSWER) -> QARecord:
    return QARecord(id=id, question=question, answer=answer, focus="Metformin", source="unit", locator=f"record {id}")


@pytest.fixture(scope="module")
def example(tokenizer):
    dataset = build_instruction_dataset(RecordBatch(records=[record()]), tokenizer, SYSTEM_PROMPT, DOMAIN_TAG)
    return dataset.examples[0]


def token_ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


# --- build_instruction_dataset ------------------------------------------------------


def test_prompt_ends_with_assistant_header(example):
    assert example.prompt.endswith(ASSISTANT_HEADER)


def test_prompt_contains_system_prompt_domain_tag_and_question(example):
    assert SYSTEM_PROMPT in example.prompt
    assert f"{DOMAIN_TAG} {QUESTION}" in example.prompt
    assert ANSWER not in example.prompt


def test_completion_is_answer_then_end_of_turn(example):
    assert example.completion.startswith(ANSWER)
    assert example.completion.rstrip("\n").endswith(END_OF_TURN)
    assert example.completion == ANSWER + END_OF_TURN + "\n"  # SmolLM2 template adds a newline after the marker


def test_prompt_is_what_inference_sees(tokenizer, example):
    assert render_prompt(tokenizer, QUESTION, SYSTEM_PROMPT, DOMAIN_TAG) == example.prompt


def test_example_fields_and_dataset_metadata(tokenizer):
    batch = RecordBatch(records=[record("a", question=f"  {QUESTION}  ", answer=f"\n{ANSWER}  "), record("b")])
    dataset = build_instruction_dataset(batch, tokenizer, SYSTEM_PROMPT, DOMAIN_TAG, base_model_sha256="f00d")
    assert [e.id for e in dataset.examples] == ["a", "b"]
    assert (dataset.domain_tag, dataset.base_model_sha256) == (DOMAIN_TAG, "f00d")
    first, second = dataset.examples
    assert (first.question, first.answer, first.focus) == (QUESTION, ANSWER, "Metformin")  # stripped
    assert (first.prompt, first.completion) == (second.prompt, second.completion)
    assert dataset.fingerprint() == build_instruction_dataset(
        batch, tokenizer, SYSTEM_PROMPT, DOMAIN_TAG, base_model_sha256="f00d"
    ).fingerprint()


def test_empty_domain_tag_gives_no_tag(tokenizer):
    dataset = build_instruction_dataset(RecordBatch(records=[record()]), tokenizer, SYSTEM_PROMPT, "")
    prompt = dataset.examples[0].prompt
    assert "<|domain:" not in prompt
    assert f"<|im_start|>user\n{QUESTION}{END_OF_TURN}" in prompt
    assert dataset.domain_tag == ""


def test_empty_system_prompt_gives_no_custom_system_text(tokenizer):
    prompt = build_instruction_dataset(RecordBatch(records=[record()]), tokenizer, "", DOMAIN_TAG).examples[0].prompt
    assert SYSTEM_PROMPT not in prompt
    assert prompt.endswith(ASSISTANT_HEADER)


@pytest.mark.parametrize("missing", ["answer", "question", "id"])
def test_unvalidated_record_raises(tokenizer, missing):
    bad = record().model_copy(update={missing: None})
    with pytest.raises(ValueError, match="was not validated"):
        build_instruction_dataset(RecordBatch(records=[record("ok"), bad]), tokenizer, SYSTEM_PROMPT, DOMAIN_TAG)


# --- encode_example -----------------------------------------------------------------


def test_labels_mask_prompt_and_copy_completion(tokenizer, example):
    prompt_ids = token_ids(tokenizer, example.prompt)
    completion_ids = token_ids(tokenizer, example.completion)
    encoded = encode_example(tokenizer, example.prompt, example.completion, max_length=1024)
    assert encoded["input_ids"] == prompt_ids + completion_ids
    assert len(encoded["input_ids"]) == len(encoded["labels"]) == len(encoded["attention_mask"])
    assert encoded["attention_mask"] == [1] * len(encoded["input_ids"])
    assert encoded["labels"][: len(prompt_ids)] == [IGNORE_INDEX] * len(prompt_ids)
    assert encoded["labels"][len(prompt_ids):] == encoded["input_ids"][len(prompt_ids):] == completion_ids
    assert IGNORE_INDEX not in completion_ids


def test_completion_tokens_decode_to_answer(tokenizer, example):
    encoded = encode_example(tokenizer, example.prompt, example.completion, max_length=1024)
    kept = [t for t in encoded["labels"] if t != IGNORE_INDEX]
    assert tokenizer.decode(kept) == example.completion
    assert kept[-2:] == token_ids(tokenizer, END_OF_TURN + "\n")


def test_truncation_keeps_prompt_and_cuts_completion(tokenizer, example):
    prompt_ids = token_ids(tokenizer, example.prompt)
    completion_ids = token_ids(tokenizer, example.completion)
    max_length = len(prompt_ids) + 5
    assert len(completion_ids) > 5
    encoded = encode_example(tokenizer, example.prompt, example.completion, max_length=max_length)
    assert len(encoded["input_ids"]) == len(encoded["labels"]) == len(encoded["attention_mask"]) == max_length
    assert encoded["input_ids"][: len(prompt_ids)] == prompt_ids
    assert encoded["input_ids"][len(prompt_ids):] == completion_ids[:5]
    assert encoded["labels"] == [IGNORE_INDEX] * len(prompt_ids) + completion_ids[:5]


def test_exact_fit_is_not_truncated(tokenizer, example):
    total = len(token_ids(tokenizer, example.prompt)) + len(token_ids(tokenizer, example.completion))
    assert len(encode_example(tokenizer, example.prompt, example.completion, max_length=total)["input_ids"]) == total


@pytest.mark.parametrize("shortfall", [0, 1, 10])
def test_prompt_not_shorter_than_max_length_raises(tokenizer, example, shortfall):
    prompt_length = len(token_ids(tokenizer, example.prompt))
    with pytest.raises(ValueError, match=f"prompt is {prompt_length} tokens"):
        encode_example(tokenizer, example.prompt, example.completion, max_length=prompt_length - shortfall)
