"""Greedy generation speed of the 4-bit base model on this machine: one prompt vs batches.

    .venv/bin/python benchmarks/eval_generation_speed.py [--tokens 32] [--batches 1 4 12]

Prints seconds per decoding step and per generated token for each batch size
(``min_new_tokens`` forces the full length so that runs are comparable). Used to
choose ``evaluation.generation_batch_size`` and the benchmark subset for `make run`.
"""

from __future__ import annotations

import argparse
import json
import time

from drugslm_core.config import BaseModelSettings, DataSettings
from drugslm_core.data.formatting import render_prompt
from drugslm_core.evaluation.benchmark import load_benchmark
from drugslm_core.modeling.base_model import provision_base_model
from drugslm_core.modeling.loading import load_quantized_base, load_tokenizer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 12])
    args = parser.parse_args()
    import torch

    base = provision_base_model(BaseModelSettings())
    tokenizer = load_tokenizer(base)
    tokenizer.padding_side = "left"
    model = load_quantized_base(base)
    data = DataSettings()
    prompts = [render_prompt(tokenizer, item.question, data.system_prompt, data.domain_tag) for item in load_benchmark().items]
    rows = []
    for size in args.batches:
        inputs = tokenizer(prompts[:size], return_tensors="pt", padding=True, add_special_tokens=False)
        began = time.perf_counter()
        with torch.no_grad():
            model.generate(**inputs, max_new_tokens=args.tokens, min_new_tokens=args.tokens, do_sample=False,
                           use_cache=True, pad_token_id=tokenizer.pad_token_id)
        seconds = time.perf_counter() - began
        rows.append({"batch": size, "seconds": round(seconds, 2), "s_per_step": round(seconds / args.tokens, 4),
                     "s_per_token": round(seconds / (args.tokens * size), 4)})
        print(json.dumps(rows[-1]), flush=True)


if __name__ == "__main__":
    main()
