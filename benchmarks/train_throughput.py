"""Training throughput: our finetune training vs a padded baseline, same model, data and steps.

    .venv/bin/python benchmarks/train_throughput.py [--steps 8] [--max-length 1024] [--profile]

- Data: MedQuAD from ``../shared/data/medquad`` through our ingest → clean → GX gate →
  build path; the drugs/topics of an eval split (grouped by focus) are held out.
- **ours**: ``drugslm_core.modeling.training.finetune`` (what the finetune step runs):
  TRL SFTTrainer, QLoRA, examples packed best-fit into rows of ``max_length`` tokens,
  padding-free, loss on answer tokens only. 1 packed row per micro-batch, 2 micro-batches
  per optimizer step.
- **baseline**, in the style of the modular scripts: transformers Trainer on the same
  4-bit model and LoRA, every example padded to ``max_length``, loss on all tokens, no
  packing, 2 examples per optimizer step.
- Same optimizer steps, learning rate, schedule and seed. Each run is its own process
  (so peak RSS is its own), and the QLoRA run is repeated in LoRA-bf16 mode for memory.
- ``useful tokens`` = real (non-padding) tokens of training examples that went through
  the model; ``eval_loss`` = mean loss per answer token on the held-out split (the
  quantity fine-tuning is for), the same function for both.

``max_length`` 1024 covers 99.97% of the MedQuAD examples (p95 606 tokens); at 512, 8%
would be truncated. Last line:

    BENCH train useful_tokens_per_s=<ours> baseline_useful_tokens_per_s=<base> ratio=<r> qlora_peak_rss_mb=<m> lora_bf16_peak_rss_mb=<m2>
"""

from __future__ import annotations

import argparse
import json
import math
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MEDQUAD = ROOT / ".." / "shared" / "data" / "medquad"


def build_data(medquad: Path, train_examples: int, eval_examples: int, out: Path) -> dict[str, int]:
    from drugslm_core.config import DataSettings, Settings, SourceFile
    from drugslm_core.data.formatting import build_instruction_dataset
    from drugslm_core.data.ingest import ingest_sources
    from drugslm_core.data.splits import split_by_focus
    from drugslm_core.data.transform import clean_records
    from drugslm_core.modeling.base_model import provision_base_model
    from drugslm_core.modeling.loading import load_tokenizer
    from drugslm_core.quality.gate import apply_quality_gate

    settings = Settings()
    base = provision_base_model(settings.base_model)
    data = DataSettings(include_sample_corpus=False, files=[SourceFile(path=p) for p in sorted(medquad.iterdir()) if p.is_dir()])
    ingested = ingest_sources(data)
    cleaned = clean_records(ingested.records, ingested.documents, settings.cleaning)
    gate = apply_quality_gate(cleaned.records, settings.validation, upstream=cleaned.duplicates)
    dataset = build_instruction_dataset(
        gate.accepted, load_tokenizer(base), settings.data.system_prompt, settings.data.domain_tag, base.sha256
    )
    train, held_out = split_by_focus(dataset, 0.1, settings.split.seed)
    rng = random.Random(13)
    train_rows, eval_rows = list(train.examples), list(held_out.examples)
    rng.shuffle(train_rows)
    rng.shuffle(eval_rows)
    train = train.model_copy(update={"examples": train_rows[:train_examples]})
    held_out = held_out.model_copy(update={"examples": eval_rows[:eval_examples]})
    (out / "train.json").write_text(train.model_dump_json())
    (out / "eval.json").write_text(held_out.model_dump_json())
    (out / "base.json").write_text(base.model_dump_json())
    return {"accepted": len(dataset), "train": len(train), "eval": len(held_out)}


def _eval_loss(model, base, held_out, max_length: int) -> float:
    from drugslm_core.evaluation.perplexity import answer_perplexity
    from drugslm_core.modeling.loading import load_tokenizer

    model.eval()
    return math.log(answer_perplexity(model, load_tokenizer(base), held_out, max_length, 8).perplexity)


def run_ours(job: Path, args: argparse.Namespace, mode: str) -> dict[str, float]:
    from drugslm_core.config import TrainingSettings
    from drugslm_core.data.formatting import InstructionDataset
    from drugslm_core.modeling.base_model import BaseModelRef
    from drugslm_core.modeling.loading import load_trained
    from drugslm_core.modeling.training import finetune

    train = InstructionDataset.model_validate_json((job / "train.json").read_text())
    held_out = InstructionDataset.model_validate_json((job / "eval.json").read_text())
    base = BaseModelRef.model_validate_json((job / "base.json").read_text())
    settings = TrainingSettings(
        mode=mode, max_steps=args.steps, per_device_batch_size=1, gradient_accumulation_steps=2,
        max_seq_length=args.max_length, learning_rate=3e-4, warmup_steps=1, logging_steps=1, packing=True,
    )
    outcome = finetune(train, base, settings, Path(tempfile.mkdtemp(prefix="bench-ours-")))
    result = {"runtime_s": outcome.runtime_s, "useful_tokens": outcome.tokens_seen,
              "answer_tokens": outcome.answer_tokens, "steps": outcome.steps}
    if mode == "qlora":
        result["eval_loss"] = _eval_loss(load_trained(base, outcome.adapter_dir), base, held_out, args.max_length)
    return result


def run_baseline(job: Path, args: argparse.Namespace) -> dict[str, float]:
    """The modular-script way: pad every example to max_length, loss on every real token."""
    from datasets import Dataset
    from peft import get_peft_model
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments, set_seed

    from drugslm_core.config import TrainingSettings
    from drugslm_core.data.formatting import InstructionDataset
    from drugslm_core.modeling.base_model import BaseModelRef
    from drugslm_core.modeling.loading import load_quantized_base, load_tokenizer
    from drugslm_core.modeling.training import lora_config

    train = InstructionDataset.model_validate_json((job / "train.json").read_text())
    held_out = InstructionDataset.model_validate_json((job / "eval.json").read_text())
    base = BaseModelRef.model_validate_json((job / "base.json").read_text())
    set_seed(13)
    tokenizer = load_tokenizer(base)
    texts = [e.prompt + e.completion for e in train.examples]
    encoded = tokenizer(texts, padding="max_length", truncation=True, max_length=args.max_length, add_special_tokens=False)
    dataset = Dataset.from_dict({"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]})
    model = get_peft_model(load_quantized_base(base), lora_config(TrainingSettings()))
    trainer = Trainer(
        model=model,
        args=TrainingArguments(
            output_dir=tempfile.mkdtemp(prefix="bench-baseline-"), max_steps=args.steps, per_device_train_batch_size=2,
            learning_rate=3e-4, lr_scheduler_type="cosine", warmup_steps=1, logging_steps=1, save_strategy="no",
            report_to="none", bf16=True, use_cpu=True, seed=13, include_num_input_tokens_seen="non_padding",
        ),
        train_dataset=dataset,
        data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
    )
    started = time.perf_counter()
    trainer.train()
    runtime = time.perf_counter() - started
    return {"runtime_s": runtime, "useful_tokens": int(trainer.state.num_input_tokens_seen), "steps": trainer.state.global_step,
            "eval_loss": _eval_loss(model, base, held_out, args.max_length)}


def worker(args: argparse.Namespace) -> None:
    job = Path(args.job)
    run = {"ours": lambda: run_ours(job, args, "qlora"), "ours-lora-bf16": lambda: run_ours(job, args, "lora"),
           "baseline": lambda: run_baseline(job, args)}[args.worker]
    if args.profile:
        import torch

        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
            result = run()
        print(profile.key_averages().table(sort_by="self_cpu_time_total", row_limit=15), file=sys.stderr)
    else:
        result = run()
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(result))


def spawn(variant: str, job: Path, args: argparse.Namespace) -> dict[str, float]:
    command = [sys.executable, __file__, "--worker", variant, "--job", str(job), "--steps", str(args.steps),
               "--max-length", str(args.max_length), *(["--profile"] if args.profile and variant == "ours" else [])]
    print(f"… {variant}", flush=True)
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{variant} failed:\n{done.stderr[-4000:]}")
    if args.profile and variant == "ours":
        print(done.stderr[done.stderr.find("---"):][-6000:])
    line = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--medquad", type=Path, default=DEFAULT_MEDQUAD)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--train-examples", type=int, default=400)
    parser.add_argument("--eval-examples", type=int, default=48)
    parser.add_argument("--profile", action="store_true", help="print torch.profiler's top ops of our run")
    parser.add_argument("--worker", choices=["ours", "ours-lora-bf16", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--job", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    medquad = args.medquad.resolve()
    if not medquad.is_dir():
        print(f"no MedQuAD under {medquad}", file=sys.stderr)
        return 2
    job = Path(tempfile.mkdtemp(prefix="bench-train-"))
    sizes = build_data(medquad, args.train_examples, args.eval_examples, job)
    print(f"MedQuAD: {sizes['accepted']} accepted examples; {sizes['train']} for training, {sizes['eval']} held out; "
          f"{args.steps} optimizer steps, max_length {args.max_length}")
    results = {variant: spawn(variant, job, args) for variant in ("baseline", "ours", "ours-lora-bf16")}
    for variant, result in results.items():
        rate = result["useful_tokens"] / result["runtime_s"]
        eval_loss = f"  eval_loss={result['eval_loss']:.4f}" if "eval_loss" in result else ""
        print(f"{variant:15s} steps={result['steps']} useful_tokens={result['useful_tokens']} "
              f"seconds={result['runtime_s']:.1f} useful_tokens_per_s={rate:.1f} peak_rss_mb={result['peak_rss_mb']:.0f}{eval_loss}")
    ours, baseline = results["ours"], results["baseline"]
    ours_rate = ours["useful_tokens"] / ours["runtime_s"]
    base_rate = baseline["useful_tokens"] / baseline["runtime_s"]
    print(f"eval loss per answer token after {args.steps} steps: ours {ours['eval_loss']:.4f}, "
          f"baseline {baseline['eval_loss']:.4f} ({'not worse' if ours['eval_loss'] <= baseline['eval_loss'] else 'WORSE'})")
    print(f"BENCH train useful_tokens_per_s={ours_rate:.1f} baseline_useful_tokens_per_s={base_rate:.1f} "
          f"ratio={ours_rate / base_rate:.2f} qlora_peak_rss_mb={ours['peak_rss_mb']:.0f} "
          f"lora_bf16_peak_rss_mb={results['ours-lora-bf16']['peak_rss_mb']:.0f} "
          f"eval_loss={ours['eval_loss']:.4f} baseline_eval_loss={baseline['eval_loss']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
