"""The batching engine on the real 4-bit base model: batched greedy output equals sequential
greedy ``generate``, for requests that join a running batch and finish at different lengths."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import torch

from drugslm_core.config import BaseModelSettings
from drugslm_core.modeling.base_model import provision_base_model
from drugslm_core.modeling.loading import load_quantized_base, load_tokenizer
from drugslm_core.serving.auth import ApiKeys, is_loopback
from drugslm_core.serving.engine import (
    BatchEngine,
    EngineModel,
    Event,
    GenerationRequest,
    QueueFull,
    Sampling,
    _safe_end,
)

QUESTIONS = [
    "What is ibuprofen used for?",
    "Can I take paracetamol with alcohol?",
    "What are the side effects of metformin?",
    "Hi",
    "Is aspirin safe during pregnancy? Please explain in detail.",
]


@pytest.fixture(scope="module")
def model_and_tokenizer() -> tuple[Any, Any]:
    base = provision_base_model(BaseModelSettings())
    model = load_quantized_base(base)
    model.eval()
    return model, load_tokenizer(base)


def _prompt_ids(tokenizer: Any, question: str) -> list[int]:
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True)
    return list(tokenizer(prompt, add_special_tokens=False)["input_ids"])


class Collector:
    def __init__(self) -> None:
        self.text, self.events, self.done = "", [], threading.Event()

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        if event.kind == "text":
            self.text += event.text
        if event.kind in {"finish", "error"}:
            self.done.set()


def test_batched_greedy_equals_sequential_greedy(model_and_tokenizer: tuple[Any, Any]) -> None:
    model, tokenizer = model_and_tokenizer
    budgets = [12, 4, 12, 12, 8]
    prompts = [_prompt_ids(tokenizer, q) for q in QUESTIONS]
    expected = []
    for ids, budget in zip(prompts, budgets, strict=True):
        with torch.no_grad():
            out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 max_new_tokens=budget, do_sample=False, use_cache=True, pad_token_id=tokenizer.pad_token_id)
        expected.append(tokenizer.decode(out[0, len(ids):], skip_special_tokens=True))
    sizes: list[int] = []
    engine = BatchEngine(EngineModel(model, tokenizer, "7"), max_batch_size=8, on_batch=sizes.append)
    engine.start()
    try:
        collectors = [Collector() for _ in prompts]
        for index, (ids, budget) in enumerate(zip(prompts, budgets, strict=True)):
            engine.submit(GenerationRequest(ids, Sampling(max_tokens=budget), collectors[index]))
            if index == 2:  # the last two join a batch already decoding
                deadline = time.monotonic() + 60
                while not collectors[0].text and time.monotonic() < deadline:
                    time.sleep(0.01)
        for collector in collectors:
            assert collector.done.wait(120)
    finally:
        engine.stop()
    assert [c.text for c in collectors] == expected
    assert max(sizes) > 1, "the requests were never decoded together"
    starts = [next(e for e in c.events if e.kind == "start") for c in collectors]
    assert {s.version for s in starts} == {"7"}
    finishes = [c.events[-1] for c in collectors]
    assert [f.completion_tokens <= b for f, b in zip(finishes, budgets, strict=True)] == [True] * 5
    assert finishes[1].finish_reason == "length" and finishes[1].completion_tokens == 4


def test_sampling_with_a_seed_is_reproducible_and_swaps_wait_for_the_batch(model_and_tokenizer: tuple[Any, Any]) -> None:
    model, tokenizer = model_and_tokenizer
    ids = _prompt_ids(tokenizer, QUESTIONS[0])
    engine = BatchEngine(EngineModel(model, tokenizer, "1"), max_batch_size=4)
    engine.start()
    try:
        runs = []
        for _ in range(2):
            collector = Collector()
            engine.submit(GenerationRequest(ids, Sampling(max_tokens=8, temperature=0.9, top_p=0.9, seed=5), collector))
            assert collector.done.wait(60)
            runs.append(collector.text)
        assert runs[0] == runs[1] and runs[0]
        first, second = Collector(), Collector()
        engine.submit(GenerationRequest(ids, Sampling(max_tokens=10), first))
        while not first.text:
            time.sleep(0.01)
        engine.swap(EngineModel(model, tokenizer, "2"))  # same weights, new label: which version served what
        engine.submit(GenerationRequest(ids, Sampling(max_tokens=3), second))
        assert first.done.wait(60) and second.done.wait(60)
        assert first.events[0].version == "1" and first.events[-1].version == "1"
        assert second.events[0].version == "2"
    finally:
        engine.stop()


def test_the_queue_is_bounded(model_and_tokenizer: tuple[Any, Any]) -> None:
    model, tokenizer = model_and_tokenizer
    engine = BatchEngine(EngineModel(model, tokenizer, "1"), max_queue=2)  # not started: nothing drains
    for _ in range(2):
        engine.submit(GenerationRequest([1, 2], Sampling(max_tokens=1), Collector()))
    with pytest.raises(QueueFull):
        engine.submit(GenerationRequest([1, 2], Sampling(max_tokens=1), Collector()))


def test_text_is_held_back_while_it_may_become_a_stop_string() -> None:
    assert _safe_end("Take two tablets. ##", ["###"]) == len("Take two tablets. ")
    assert _safe_end("Take two", ["###"]) == len("Take two")
    assert _safe_end("caf\ufffd", []) == 3


def test_api_keys_are_hashed_and_checked_in_constant_time(tmp_path: Any) -> None:
    keys_file = tmp_path / "keys"
    keys_file.write_text("# team keys\nfile-key\n\n")
    keys = ApiKeys.from_env({"DRUGSLM_API_KEYS": "a-key, b-key", "DRUGSLM_API_KEYS_FILE": str(keys_file)})
    assert keys.enabled
    assert keys.accepts("Bearer a-key") and keys.accepts("bearer b-key") and keys.accepts("Bearer file-key")
    assert not keys.accepts("Bearer c-key") and not keys.accepts("a-key") and not keys.accepts(None)
    assert "a-key" not in repr(vars(keys))
    assert not ApiKeys.from_env({}).enabled and ApiKeys.from_env({}).accepts(None)
    with pytest.raises(FileNotFoundError, match="DRUGSLM_API_KEYS_FILE"):
        ApiKeys.from_env({"DRUGSLM_API_KEYS_FILE": str(tmp_path / "missing")})
    assert is_loopback("127.0.0.1") and is_loopback("::1") and not is_loopback("0.0.0.0")
