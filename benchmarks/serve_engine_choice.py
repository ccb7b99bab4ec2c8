"""Why the server has its own batching loop: it against transformers' continuous batching, same run.

    .venv/bin/python benchmarks/serve_engine_choice.py [--prompts 8] [--max-tokens 24]

The 4-bit base with a fresh LoRA adapter (peft), the same chat prompts, greedy, on this
machine's CPU: (1) our engine (``drugslm_core.serving.engine``, all prompts submitted at
once), (2) ``model.generate_batch`` (transformers' continuous-batching manager, paged
cache). Prints tokens/s of both, whether each one's answers equal sequential greedy
``generate`` of the first two prompts, and ends with
``BENCH serve_engine ours_tokens_per_s=… cb_tokens_per_s=… ratio=… cb_error=…``
(ratio: ours / continuous batching; ``cb_error`` says if it did not run).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=24)
    args = parser.parse_args()
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model

    from drugslm_core.config import BaseModelSettings
    from drugslm_core.evaluation.benchmark import load_benchmark
    from drugslm_core.modeling.base_model import provision_base_model
    from drugslm_core.modeling.loading import load_quantized_base, load_tokenizer
    from drugslm_core.serving.engine import BatchEngine, EngineModel, Event, GenerationRequest, Sampling

    base = provision_base_model(BaseModelSettings())
    tokenizer = load_tokenizer(base)
    adapter = Path(tempfile.mkdtemp(prefix="drugslm-engine-choice-")) / "adapter"
    get_peft_model(load_quantized_base(base), LoraConfig(r=4, lora_alpha=8, target_modules="all-linear",
                                                         task_type="CAUSAL_LM")).save_pretrained(adapter)
    model = PeftModel.from_pretrained(load_quantized_base(base), str(adapter))
    model.eval()
    questions = [item.question for item in load_benchmark().items][: args.prompts]
    prompts = [
        list(tokenizer(tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False,
                                                     add_generation_prompt=True), add_special_tokens=False)["input_ids"])
        for q in questions
    ]
    reference = []
    for ids in prompts[:2]:
        with torch.inference_mode():
            out = model.generate(torch.tensor([ids]), max_new_tokens=args.max_tokens, do_sample=False, use_cache=True,
                                 pad_token_id=tokenizer.pad_token_id)
        reference.append(out[0, len(ids):].tolist())

    # (1) our engine
    texts: dict[int, list[str]] = {i: [] for i in range(len(prompts))}
    counts: dict[int, int] = {}
    done = threading.Semaphore(0)

    def collector(index: int) -> Any:
        def emit(event: Event) -> None:
            if event.kind == "text":
                texts[index].append(event.text)
            elif event.kind in {"finish", "error"}:
                counts[index] = event.completion_tokens
                done.release()
        return emit

    engine = BatchEngine(EngineModel(model, tokenizer, "1"), max_batch_size=len(prompts))
    engine.start()
    began = time.perf_counter()
    for index, ids in enumerate(prompts):
        engine.submit(GenerationRequest(ids, Sampling(max_tokens=args.max_tokens), collector(index)))
    for _ in prompts:
        done.acquire()
    ours_seconds = time.perf_counter() - began
    engine.stop()
    ours_tps = sum(counts.values()) / ours_seconds
    ours_equal = all("".join(texts[i]) == tokenizer.decode(reference[i], skip_special_tokens=True) for i in range(2))
    print(json.dumps({"engine": "ours", "tokens": sum(counts.values()), "seconds": round(ours_seconds, 2),
                      "tokens_per_s": round(ours_tps, 2), "greedy_equals_generate": ours_equal}), flush=True)

    # (2) transformers' continuous batching
    cb_tps, cb_error = 0.0, "none"
    try:
        from transformers import GenerationConfig

        config = GenerationConfig(max_new_tokens=args.max_tokens, do_sample=False, eos_token_id=tokenizer.eos_token_id,
                                  pad_token_id=tokenizer.pad_token_id)
        began = time.perf_counter()
        results = model.generate_batch(inputs=prompts, generation_config=config, progress_bar=False)
        cb_seconds = time.perf_counter() - began
        outputs = sorted(results.values(), key=lambda r: int(str(r.request_id).split("_")[-1]) if str(r.request_id).split("_")[-1].isdigit() else 0)
        tokens = sum(len(r.generated_tokens) for r in outputs)
        cb_tps = tokens / cb_seconds
        by_prompt = {tuple(r.prompt_ids): r.generated_tokens for r in outputs}
        cb_equal = all(list(by_prompt.get(tuple(prompts[i]), []))[: len(reference[i])] == reference[i] for i in range(2))
        print(json.dumps({"engine": "transformers generate_batch", "tokens": tokens, "seconds": round(cb_seconds, 2),
                          "tokens_per_s": round(cb_tps, 2), "greedy_equals_generate": cb_equal}), flush=True)
    except Exception as error:  # reported in the BENCH line, not hidden
        cb_error = type(error).__name__
        print(json.dumps({"engine": "transformers generate_batch", "error": repr(error)[:300]}), flush=True)
    ratio = ours_tps / cb_tps if cb_tps else float("nan")
    print(f"BENCH serve_engine ours_tokens_per_s={ours_tps:.1f} cb_tokens_per_s={cb_tps:.1f} ratio={ratio:.2f} "
          f"cb_error={cb_error}")


if __name__ == "__main__":
    main()
