"""Generate the answers behind ``tests/data/safety_labels.jsonl`` (run once by hand, not by the tests).

    .venv/bin/python tests/data/generate_safety_answers.py OUT.jsonl [--steps 40]

Trains a real QLoRA adapter on the bundled corpus's train split (the pipeline's
split and training settings from ``configs/local.yaml``, no ZenML) and has the base
model and that adapter answer all 48 bundled benchmark questions greedily, as the
evaluate step does. Each row gets the flags the checker raises now; the labels
(``labels``: flag -> {"label": 0/1, "reason": ...}) were then written by reading
every answer (see ``tests/unit/test_eval_safety_labels.py``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from drugslm_core.config import load_settings_file
from drugslm_core.data.formatting import build_instruction_dataset
from drugslm_core.data.records import RecordBatch
from drugslm_core.data.sample_corpus import leaflet_records
from drugslm_core.data.splits import split_three_ways
from drugslm_core.evaluation.benchmark import load_benchmark
from drugslm_core.evaluation.compare import answer_benchmark
from drugslm_core.evaluation.safety import corpus_safety_checker
from drugslm_core.modeling.base_model import provision_base_model
from drugslm_core.modeling.loading import ModelSet, load_tokenizer
from drugslm_core.modeling.training import finetune


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--steps", type=int, default=None)
    args = parser.parse_args()
    settings = load_settings_file(Path("configs/local.yaml"))
    training = settings.training if args.steps is None else settings.training.model_copy(update={"max_steps": args.steps})
    base = provision_base_model(settings.base_model)
    tokenizer = load_tokenizer(base)
    dataset = build_instruction_dataset(
        RecordBatch(records=leaflet_records()), tokenizer, settings.data.system_prompt, settings.data.domain_tag,
        base.sha256,
    )
    train, validation, eval_split = split_three_ways(dataset, settings.split)
    work = Path(tempfile.mkdtemp(prefix="drugslm-labels-"))
    outcome = finetune(train, base, training, work, validation)
    benchmark = load_benchmark()
    loaded = ModelSet(base, {"tuned": outcome.adapter_dir}, training.compute_dtype)
    checker = corpus_safety_checker()
    held_out = {e.focus.strip().lower() for e in eval_split.examples}
    items = {item.id: item for item in benchmark.items}
    with args.out.open("w", encoding="utf-8") as handle:
        for label in ("base", "tuned"):
            with loaded.active(label) as model:
                answers = answer_benchmark(model, tokenizer, benchmark, dataset.system_prompt, dataset.domain_tag,
                                           settings.evaluation.model_copy(update={"generation_samples": None}),
                                           held_out, desc=label)
            for answer in answers:
                item = items[answer.id]
                dosage = (item.section or item.category).lower().startswith("dos")
                row = {"id": answer.id, "model": label, "drug": item.drug, "question": item.question,
                       "answer": answer.response, "checker": checker.flags(answer.response, item.drug, dosage),
                       "training": {"steps": outcome.steps, "train_loss": round(outcome.train_loss, 4)}}
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {args.out} ({outcome.steps} training steps, loss {outcome.train_loss:.3f})")


if __name__ == "__main__":
    main()
