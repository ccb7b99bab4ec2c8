"""Generate the answers behind ``tests/data/safety_labels.jsonl`` (run by hand, not by the tests).

    PYTHONPATH=. .venv/bin/python tests/data/generate_safety_answers.py OUT.jsonl [--train-steps N]

Greedy answers, generated as the evaluate step generates them (``answer_benchmark``,
``configs/local.yaml``'s evaluation settings, left-padded batches):

- ``base``: the 4-bit SmolLM2 base model on all 48 bundled benchmark questions;
- ``tuned``: the first 24 questions (round-robin across categories) answered by a
  LoRA adapter. By default the adapter is ``tests/lora_adapters.py``'s random-init LoRA
  (r=4, alpha=2, torch seed 0): a model that answers differently from the base. With
  ``--train-steps N`` it is a real QLoRA run of N steps on the bundled corpus's train
  split instead. The committed file used the default: on the shared 2-core machine a
  40-step run took over 2 minutes per step that day.

Labels (``labels``: flag -> {"label": 0/1, "reason": ...}) were then written by reading
every answer; ``tests/unit/test_eval_safety_labels.py`` scores the flags against them.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from drugslm_core.config import load_settings_file
from drugslm_core.evaluation.benchmark import load_benchmark
from drugslm_core.evaluation.compare import answer_benchmark
from drugslm_core.modeling.base_model import provision_base_model
from drugslm_core.modeling.loading import ModelSet, load_tokenizer


def adapter_dir(train_steps: int | None, work: Path) -> tuple[Path, str]:
    settings = load_settings_file(Path("configs/local.yaml"))
    base = provision_base_model(settings.base_model)
    if train_steps is None:
        import torch

        from tests.lora_adapters import save_lora_adapter

        torch.manual_seed(0)
        return save_lora_adapter(base, work / "lora", random_init=True, lora_alpha=2), (
            "random-init LoRA r=4 alpha=2 (tests/lora_adapters.py, seed 0)"
        )
    from drugslm_core.data.formatting import build_instruction_dataset
    from drugslm_core.data.records import RecordBatch
    from drugslm_core.data.sample_corpus import leaflet_records
    from drugslm_core.data.splits import split_three_ways
    from drugslm_core.modeling.training import finetune

    dataset = build_instruction_dataset(RecordBatch(records=leaflet_records()), load_tokenizer(base),
                                        settings.data.system_prompt, settings.data.domain_tag, base.sha256)
    train, validation, _ = split_three_ways(dataset, settings.split)
    training = settings.training.model_copy(update={"max_steps": train_steps})
    outcome = finetune(train, base, training, work, validation)
    return Path(outcome.adapter_dir), f"QLoRA, {outcome.steps} steps on the bundled corpus"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--train-steps", type=int, default=None)
    args = parser.parse_args()
    settings = load_settings_file(Path("configs/local.yaml"))
    base = provision_base_model(settings.base_model)
    tokenizer = load_tokenizer(base)
    path, description = adapter_dir(args.train_steps, Path(tempfile.mkdtemp(prefix="drugslm-labels-")))
    loaded = ModelSet(base, {"tuned": path})
    benchmark = load_benchmark()
    rows = []
    for label, questions in (("base", benchmark), ("tuned", benchmark.subset(24))):
        with loaded.active(label) as model:
            answers = answer_benchmark(model, tokenizer, questions, settings.data.system_prompt,
                                       settings.data.domain_tag, settings.evaluation, desc=label)
        rows += [{"id": a.id, "model": label, **({"adapter": description} if label == "tuned" else {}),
                  "drug": a.drug, "question": a.question, "answer": a.response} for a in answers]
    args.out.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    print(f"wrote {len(rows)} answers to {args.out}")


if __name__ == "__main__":
    main()
