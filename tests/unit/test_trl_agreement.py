"""Our tokenisation (drugslm_core.modeling.tokenization.encode_example) against TRL's own:
the rows SFTTrainer prepares from the same prompt/completion examples with
``completion_only_loss=True`` (TRL 1.16, ``SFTTrainer._prepare_dataset``).

The sample rows are bundled-corpus records rendered exactly as the pipeline does
(``build_instruction_dataset`` with the real tokenizer's chat template and the default
data settings). The trainer gets a tiny random model: dataset preparation uses only
the tokenizer, never the weights.

Finding: token for token the same prompt and completion ids and the same loss mask,
except that TRL appends the tokenizer's EOS (``<|im_end|>``) to a string completion that
does not already end with it, and ours ends with the template's ``<|im_end|>\\n``. That
extra token would be trained on (it bears a label), so training keeps handing TRL our
pre-tokenized rows.
"""

from __future__ import annotations

from typing import Any

import pytest

from drugslm_core.config import DataSettings
from drugslm_core.data.formatting import InstructionDataset, build_instruction_dataset, conversation
from drugslm_core.data.records import RecordBatch
from drugslm_core.data.sample_corpus import leaflet_records
from drugslm_core.modeling.tokenization import IGNORE_INDEX, encode_example

LONG = 4096
"""Longer than any sample row: nothing is truncated."""
CUT = 100
"""Shorter than every sample row but longer than every prompt: completions are cut."""


@pytest.fixture(scope="module")
def sample(tokenizer) -> InstructionDataset:
    data = DataSettings()
    records = leaflet_records()[::40]  # 8 rows: different drugs and leaflet sections
    return build_instruction_dataset(RecordBatch(records=records), tokenizer, data.system_prompt, data.domain_tag)


@pytest.fixture(scope="module")
def model(tokenizer) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, pad_token_id=tokenizer.pad_token_id)
    return LlamaForCausalLM(config)


def trl_rows(model: Any, tokenizer: Any, rows: list[dict[str, Any]], tmp_path: Any, **config: Any) -> list[dict]:
    """The train dataset as SFTTrainer prepared it (tokenized, labels from its completion mask)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(output_dir=str(tmp_path), completion_only_loss=True, report_to="none", use_cpu=True, **config)
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
    return list(trainer.train_dataset)


def string_rows(sample: InstructionDataset) -> list[dict[str, str]]:
    return [{"prompt": e.prompt, "completion": e.completion} for e in sample.examples]


def completion_positions(labels: list[int]) -> list[int]:
    """Where the loss is taken: TRL builds its labels from ``completion_mask`` (1 → the token id, 0 → -100)."""
    return [i for i, label in enumerate(labels) if label != IGNORE_INDEX]


def test_sample_rows_are_the_pipelines_chatml(sample, tokenizer):
    assert len(sample) == 8 and len({e.focus for e in sample.examples}) > 1
    assert tokenizer.eos_token == "<|im_end|>"
    for example in sample.examples:
        assert example.prompt.endswith("<|im_start|>assistant\n")
        assert example.completion.endswith("<|im_end|>\n")  # not with the EOS: so TRL's add-EOS step fires
        assert len(encode_example(tokenizer, example.prompt, example.completion, LONG)["input_ids"]) > CUT


def test_trl_tokenises_like_us_then_appends_one_eos(sample, model, tokenizer, tmp_path):
    trl = trl_rows(model, tokenizer, string_rows(sample), tmp_path, max_length=LONG)
    assert len(trl) == len(sample)
    eos = tokenizer.eos_token_id
    for example, row in zip(sample.examples, trl, strict=True):
        ours = encode_example(tokenizer, example.prompt, example.completion, LONG)
        n = len(ours["input_ids"])
        # Exact difference: TRL's "Adding EOS" step turns the completion "…<|im_end|>\n" into
        # "…<|im_end|>\n<|im_end|>" (it only checks `completion.endswith(eos_token)`), so its row is ours
        # plus one <|im_end|> after the template's trailing newline, and that token is a loss target.
        # Everything before it is identical: tokenizing prompt + completion jointly gives the same ids as
        # tokenizing them apart (the prompt ends on "\n", a token boundary), so the prompt/completion
        # boundary (TRL: common prefix of prompt and prompt+completion ids) is where ours is.
        assert row["input_ids"] == ours["input_ids"] + [eos]
        assert row["labels"] == ours["labels"] + [eos]
        assert completion_positions(row["labels"]) == completion_positions(ours["labels"]) + [n]
        assert completion_positions(ours["labels"])[0] == len(tokenizer(example.prompt, add_special_tokens=False)
                                                              ["input_ids"])


def test_rows_agree_exactly_when_the_completion_is_cut(sample, model, tokenizer, tmp_path):
    # Both keep the start (TRL's default truncation_mode="keep_start"): the prompt whole, the completion's
    # head. The EOS TRL appended is among the cut tokens, so nothing differs.
    trl = trl_rows(model, tokenizer, string_rows(sample), tmp_path, max_length=CUT)
    for example, row in zip(sample.examples, trl, strict=True):
        ours = encode_example(tokenizer, example.prompt, example.completion, CUT)
        assert len(ours["input_ids"]) == CUT
        assert (row["input_ids"], row["labels"]) == (ours["input_ids"], ours["labels"])


def test_a_prompt_filling_max_length_is_dropped_by_trl_but_an_error_for_us(sample, model, tokenizer, tmp_path):
    example = sample.examples[0]
    prompt_len = len(tokenizer(example.prompt, add_special_tokens=False)["input_ids"])
    # TRL truncates the row to the prompt alone, finds no label left and silently drops the example;
    # we refuse it, so a too-small max_seq_length cannot quietly shrink the training set.
    assert trl_rows(model, tokenizer, string_rows(sample)[:1] * 2, tmp_path, max_length=prompt_len) == []
    with pytest.raises(ValueError, match="not below max_seq_length"):
        encode_example(tokenizer, example.prompt, example.completion, prompt_len)


def test_conversational_rows_agree_exactly(sample, model, tokenizer, tmp_path):
    # TRL adds no EOS to conversational examples: it renders the prompt messages with the generation prompt
    # and prompt + assistant message with the chat template, which ends the turn itself ("<|im_end|>\n").
    data = DataSettings()
    rows = [{"prompt": conversation(e.question, data.system_prompt, data.domain_tag),
             "completion": [{"role": "assistant", "content": e.answer}]} for e in sample.examples]
    trl = trl_rows(model, tokenizer, rows, tmp_path, max_length=LONG)
    for example, row in zip(sample.examples, trl, strict=True):
        ours = encode_example(tokenizer, example.prompt, example.completion, LONG)
        assert (row["input_ids"], row["labels"]) == (ours["input_ids"], ours["labels"])


def test_packing_keeps_our_rows_and_masks(sample, model, tokenizer, tmp_path):
    # What training does today: our pre-tokenized rows, packed best-fit by TRL. Every packed segment is
    # one of our rows, ids and labels unchanged.
    ours = [encode_example(tokenizer, e.prompt, e.completion, 256) for e in sample.examples]
    rows = [{"input_ids": e["input_ids"], "labels": e["labels"]} for e in ours]
    packed = trl_rows(model, tokenizer, rows, tmp_path, max_length=256, packing=True, packing_strategy="bfd")
    segments = []
    for row in packed:
        assert sum(row["seq_lengths"]) == len(row["input_ids"]) <= 256
        start = 0
        for length in row["seq_lengths"]:
            segments.append((row["input_ids"][start:start + length], row["labels"][start:start + length]))
            start += length
    assert sorted(segments) == sorted((e["input_ids"], e["labels"]) for e in ours)
