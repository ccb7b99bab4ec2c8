"""Answer-token perplexity (drugslm_core.evaluation.perplexity) with a tiny random model."""

from __future__ import annotations

import math

import pytest

from drugslm_core.config import DataSettings
from drugslm_core.data.formatting import InstructionDataset, build_instruction_dataset
from drugslm_core.data.records import QARecord, RecordBatch
from drugslm_core.evaluation.perplexity import answer_perplexity
from drugslm_core.modeling.tokenization import IGNORE_INDEX, encode_example

MAX_LENGTH = 256
PAIRS = [
    ("What is ibuprofen used for?", "Ibuprofen relieves pain, fever and inflammation."),
    ("Who should not take warfarin?", "People with active bleeding or a recent stroke from bleeding should not take it."),
    ("How should I store insulin?", "Keep unopened pens in the fridge; the pen in use can stay at room temperature."),
    ("What is the usual dose of amoxicillin?", "Usually 500 mg every 8 hours."),
    ("Which medicines interact with simvastatin?", "Clarithromycin, itraconazole and grapefruit juice raise its levels."),
]


@pytest.fixture(scope="module")
def dataset(tokenizer) -> InstructionDataset:
    settings = DataSettings()
    records = [
        QARecord(id=f"r{i}", question=q, answer=a, focus=f"drug{i}", source="unit", locator=f"record {i}")
        for i, (q, a) in enumerate(PAIRS)
    ]
    return build_instruction_dataset(RecordBatch(records=records), tokenizer, settings.system_prompt, settings.domain_tag)


@pytest.fixture(scope="module")
def model(tokenizer):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        initializer_range=0.3,  # far from uniform, so context and positions matter
    )
    return LlamaForCausalLM(config).to(dtype=torch.float32, device="cpu")


def completion_token_count(tokenizer, dataset: InstructionDataset, max_length: int) -> int:
    total = 0
    for example in dataset.examples:
        labels = encode_example(tokenizer, example.prompt, example.completion, max_length)["labels"]
        assert labels[0] == IGNORE_INDEX  # the first token is never a target, so the shift drops nothing
        total += sum(label != IGNORE_INDEX for label in labels)
    return total


@pytest.fixture(scope="module")
def result(model, tokenizer, dataset):
    return answer_perplexity(model, tokenizer, dataset, MAX_LENGTH, batch_size=3)


def test_counts_completion_tokens(result, tokenizer, dataset):
    assert result.examples == len(PAIRS)
    assert result.answer_tokens == completion_token_count(tokenizer, dataset, MAX_LENGTH)
    assert result.answer_tokens > len(PAIRS)


def test_perplexity_is_exp_of_mean_nll(result):
    assert math.isfinite(result.mean_nll) and result.mean_nll > 0
    assert result.perplexity == pytest.approx(math.exp(result.mean_nll), rel=1e-12)


def test_batch_size_does_not_change_the_result(result, model, tokenizer, dataset):
    one_by_one = answer_perplexity(model, tokenizer, dataset, MAX_LENGTH, batch_size=1)
    all_at_once = answer_perplexity(model, tokenizer, dataset, MAX_LENGTH, batch_size=len(PAIRS))
    for other in (one_by_one, all_at_once):
        assert other.answer_tokens == result.answer_tokens
        assert other.mean_nll == pytest.approx(result.mean_nll, abs=1e-4)
        assert other.perplexity == pytest.approx(result.perplexity, rel=1e-4)


def test_single_example_matches_model_loss(model, tokenizer, dataset):
    import torch

    single = InstructionDataset(examples=dataset.examples[:1])
    encoded = encode_example(tokenizer, single.examples[0].prompt, single.examples[0].completion, MAX_LENGTH)
    with torch.no_grad():
        loss = model(
            input_ids=torch.tensor([encoded["input_ids"]]), labels=torch.tensor([encoded["labels"]])
        ).loss
    result = answer_perplexity(model, tokenizer, single, MAX_LENGTH, batch_size=1)
    assert result.mean_nll == pytest.approx(float(loss), rel=1e-5)


def test_truncation_limits_counted_tokens(model, tokenizer, dataset):
    prompt_lengths = [len(tokenizer(e.prompt, add_special_tokens=False)["input_ids"]) for e in dataset.examples]
    max_length = max(prompt_lengths) + 3
    truncated = answer_perplexity(model, tokenizer, dataset, max_length, batch_size=2)
    assert truncated.answer_tokens == completion_token_count(tokenizer, dataset, max_length)
    # every completion is longer than the room left, so each keeps exactly max_length - prompt tokens
    assert truncated.answer_tokens == sum(max_length - p for p in prompt_lengths)
    assert truncated.answer_tokens < completion_token_count(tokenizer, dataset, MAX_LENGTH)


def test_empty_dataset_raises(model, tokenizer):
    with pytest.raises(ValueError, match="empty dataset"):
        answer_perplexity(model, tokenizer, InstructionDataset(), MAX_LENGTH)
