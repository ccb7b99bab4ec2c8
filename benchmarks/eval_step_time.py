"""The evaluate step's cost before and after the evidence-based gate, measured in the same run.

    .venv/bin/python -m benchmarks.eval_step_time [--adapter DIR]     (from the repository root)

Runs ``evaluate_adapter`` (base + tuned on the sample eval split, no champion) twice with
``configs/local.yaml``'s evaluation settings:

- **before**: the former budget, 16 bundled benchmark questions in one batch of 16, no
  held-out questions;
- **after**: all 48 benchmark questions plus 24 of the run's held-out eval questions in
  batches of ``generation_batch_size``.

The adapter is an untrained LoRA (``tests/lora_adapters.py``) unless ``--adapter`` names a
trained one (a trained adapter stops at end-of-turn earlier or later: answer lengths differ).
Last line:

    BENCH eval_step before_s=<s> after_s=<s> ratio=<after/before> answers_before=<n> answers_after=<n> s_per_answer_before=<s> s_per_answer_after=<s>
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from drugslm_core.config import load_settings_file
from drugslm_core.evaluation.benchmark import load_benchmark
from drugslm_core.evaluation.compare import evaluate_adapter
from drugslm_core.modeling.base_model import provision_base_model
from tests.lora_adapters import sample_eval_split, save_lora_adapter


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--adapter", type=Path, default=None)
    args = parser.parse_args()
    settings = load_settings_file(Path("configs/local.yaml"))
    base = provision_base_model(settings.base_model)
    eval_split = sample_eval_split(base)
    adapter = args.adapter or save_lora_adapter(base, Path(tempfile.mkdtemp(prefix="drugslm-bench-")) / "lora")
    budgets = {
        "before": settings.evaluation.model_copy(update={"generation_samples": 16, "heldout_questions": 0,
                                                         "generation_batch_size": 16}),
        "after": settings.evaluation,
    }
    seconds, answers = {}, {}
    for name, budget in budgets.items():
        began = time.perf_counter()
        result = evaluate_adapter(adapter, base, eval_split, load_benchmark(), budget,
                                  settings.training.max_seq_length, settings.training.compute_dtype)
        seconds[name] = time.perf_counter() - began
        answers[name] = sum(len(scores.answers) for scores in result.models.values())
        print(f"{name}: {seconds[name]:.1f} s, {answers[name]} answers "
              f"(benchmark {result.benchmark}; {result.heldout or 'no held-out questions'})", flush=True)
    print(f"BENCH eval_step before_s={seconds['before']:.1f} after_s={seconds['after']:.1f} "
          f"ratio={seconds['after'] / seconds['before']:.2f} answers_before={answers['before']} "
          f"answers_after={answers['after']} s_per_answer_before={seconds['before'] / answers['before']:.2f} "
          f"s_per_answer_after={seconds['after'] / answers['after']:.2f}")


if __name__ == "__main__":
    main()
