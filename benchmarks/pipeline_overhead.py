"""Pipeline overhead: the training pipeline on the local ZenML stack vs the same core calls in a plain script.

    .venv/bin/python benchmarks/pipeline_overhead.py [--max-steps 10] [--eval-steps N] [--max-eval-examples N]
        [--generation-samples N] [--max-new-tokens N] [--cache-all] [--workdir DIR] [--keep]

- **Settings**: one settings tree, ``parameters.config`` of ``configs/local.yaml`` with the
  budget options merged in (options left out keep local.yaml's values). Both sides read
  it from the same run-config file; ``DRUGSLM_*`` variables (except ``DRUGSLM_CACHE_DIR``)
  are removed from both sides' environment, so neither gets overrides the other lacks.
- **plain**: a fresh Python process running the drugslm_core calls the steps make, in
  the pipeline's order, with the same inputs: base model, ingest, clean, validate,
  quality gate, build dataset, profile, 3-way split, finetune (``train_with_checkpoints``
  under a local folder, as the step does with the local artifact store), evaluate, register into MLflow (SQLite in the scratch folder, like ZenML's
  local tracker). What only ZenML does (storing artifacts, ``log_metadata``, the ZenML
  model version and its stage) is skipped.
- **pipeline**: ``zenml pipeline run pipelines.training.training_pipeline -c configs/bench.yaml``
  in a throw-away ZenML repository (``tests.isolated_project``: its own
  ``ZENML_CONFIG_PATH``, ``zenml init``, the ``drugslm-local`` stack), the run config being
  local.yaml with the budget and ``enable_cache: true``. Then the identical command again:
  the cached rerun. ZenML lets a run-level ``enable_cache`` override every step's decorator,
  so the run config also names, per step, those declared ``enable_cache=False`` (``ingest``,
  ``base_model``: sources may change) to keep them uncached; ``--cache-all`` leaves that out.
  The steps after them are then taken from the cache because ZenML keys inputs by content
  hash (the pydantic materializers provide one), not by artifact id. (``split`` names a
  materializer per output: with one class for all three, ZenML 0.98 ordered them from a
  ``set`` and its cache key changed with each process's hash seed.)
- Untimed set-up first: the base model is provisioned and the heavy libraries are imported
  once (warm model cache and page cache for every side), and the ZenML repository is made.
  Then, timed, in this order: plain, pipeline, pipeline again. Each time is the wall time of
  the whole process (interpreter start, imports, everything). Per-step times (core-call
  phases on the plain side, ZenML step runs on the pipeline side) are printed beside them
  for orientation; lazy imports land in different phases on the two sides.

If the first pipeline run promotes its adapter to ``champion``, the rerun's evaluate step
(when not cached) also evaluates that champion: extra work the other two runs do not have;
this is printed. Last line:

    BENCH pipeline overhead_ratio=<pipeline/plain> cached_rerun_ratio=<rerun/pipeline> plain_s=<s> pipeline_s=<s> cached_s=<s> cached_steps=<n>/<total>

Targets: overhead_ratio <= 1.15, cached_rerun_ratio <= 0.10.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PIPELINE = "pipelines.training.training_pipeline"
PIPELINE_NAME = "training_pipeline"
RUN_CONFIG = "configs/bench.yaml"  # inside the throw-away project
# The pipeline's steps in the order the plain side runs their core calls.
PHASES = ("base_model", "ingest", "clean", "validate", "quality_gate", "build_dataset", "profile_dataset",
          "split", "finetune", "evaluate", "register")
ENV = {  # as the Makefile exports them
    "ZENML_ANALYTICS_OPT_IN": "false", "ZENML_AUTO_OPEN_DASHBOARD": "false", "ZENML_ENABLE_RICH_TRACEBACK": "false",
    "GX_ANALYTICS_ENABLED": "false", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
}
# ZenML's progress lines worth echoing while a pipeline runs.
ZENML_PROGRESS = re.compile(r"(Step `?\w+`? has (started|finished in .*)|Using cached version of step `?\w+`?"
                            r"|Pipeline run has finished in .*)")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


# ---------------------------------------------------------------------------------------------
# Worker processes (started by the parent with --worker)
# ---------------------------------------------------------------------------------------------


def plain_worker(job: Path) -> dict[str, Any]:
    """The pipeline's core calls, step by step, without ZenML. Runs with ``cwd=job``."""
    phases: dict[str, float] = {}

    @contextmanager
    def phase(name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        phases[name] = time.perf_counter() - started
        print(f"[plain] {name} {phases[name]:.1f}s", flush=True)

    import mlflow

    from drugslm_core.config import load_settings
    from drugslm_core.data.formatting import build_instruction_dataset
    from drugslm_core.data.ingest import ingest_sources
    from drugslm_core.data.splits import split_three_ways
    from drugslm_core.data.transform import clean_records
    from drugslm_core.modeling.base_model import provision_base_model
    from drugslm_core.modeling.launch import train_with_checkpoints
    from drugslm_core.modeling.loading import load_tokenizer
    from drugslm_core.quality.gate import apply_quality_gate, enforce_accepted_share
    from drugslm_core.quality.profile import dataset_profile, render_data_quality_report
    from drugslm_core.registry.candidate import evaluate_against_champion
    from drugslm_core.registry.mlflow_registry import lineage_tags, register_adapter
    from drugslm_core.registry.tracking import log_training

    # pipelines/training.py: the settings tree is parameters.config of the run config.
    config = yaml.safe_load((job / "bench.yaml").read_text())["parameters"]["config"]
    settings = load_settings(config)
    # ZenML's MLflow tracker without a tracking URI: SQLite beside the artifacts; the pipeline
    # name is the experiment, one MLflow run per pipeline run (reopened by each tracked step).
    mlflow.set_tracking_uri(f"sqlite:///{job / 'mlflow.db'}")
    mlflow.set_experiment(PIPELINE_NAME)
    artifact_root = job / "artifacts"  # stands in for the local artifact store's path (checkpoints)

    with phase("base_model"):  # steps/model.py
        base = provision_base_model(settings.base_model)
    with phase("ingest"):  # steps/data.py:ingest (log_metadata of the sources skipped)
        ingested = ingest_sources(settings.data)
    with phase("clean"):
        cleaned = clean_records(ingested.records, ingested.documents, settings.cleaning)
    with phase("validate"):  # (log_metadata skipped; the step's third output is the summary)
        gate = apply_quality_gate(cleaned.records, settings.validation, upstream=cleaned.duplicates)
        gate.summary()
    with phase("quality_gate"):
        enforce_accepted_share(len(gate.accepted), gate.quarantine, settings.validation.min_accepted_share)
    with phase("build_dataset"):
        dataset = build_instruction_dataset(
            gate.accepted, load_tokenizer(base), settings.data.system_prompt, settings.data.domain_tag, base.sha256
        )
    with phase("profile_dataset"):  # the profile is computed; only logging it as ZenML metadata is skipped
        dataset_profile(dataset)
        render_data_quality_report(dataset)
    with phase("split"):
        train, validation, eval_split = split_three_ways(dataset, settings.split)
    with mlflow.start_run(run_name="plain") as run:
        with phase("finetune"):  # steps/training.py, local artifact store = a plain folder (fs None)
            outcome = train_with_checkpoints(train, validation, base, settings.training, str(artifact_root),
                                             report_to="mlflow")
            log_training(outcome)
        with phase("evaluate"):  # steps/evaluation.py (log_metadata skipped)
            candidate = evaluate_against_champion(outcome, eval_split, settings.evaluation, settings.registry)
        with phase("register"):  # steps/registry.py: no ZenML run, model stage or metadata here
            lineage = lineage_tags(run.info.run_id, "plain", PIPELINE_NAME, dataset)
            registry = settings.registry
            result = register_adapter(outcome, candidate.result, candidate.decision, registry.model_name,
                                      registry.champion_alias, lineage, registry.alias_history_length)
    return {"phases": phases, "examples": len(dataset), "train": len(train), "steps": outcome.steps,
            "base_perplexity": candidate.result.base.perplexity, "tuned_perplexity": candidate.result.tuned.perplexity,
            "promoted": result.promoted}


def warmup_worker(config: Path) -> dict[str, Any]:
    """Untimed, in the project: provision the base model (a no-op once cached), load the heavy
    libraries once, and name the steps whose decorator says ``enable_cache=False``."""
    import importlib

    from drugslm_core.config import load_settings
    from drugslm_core.modeling.base_model import provision_base_model

    settings = load_settings(yaml.safe_load(config.read_text())["parameters"]["config"])
    base = provision_base_model(settings.base_model)
    for module in ("torch", "transformers", "trl", "peft", "mlflow", "great_expectations", "evidently", "zenml"):
        try:
            importlib.import_module(module)
        except ImportError:
            pass
    import steps

    never_cached = [name for name in steps.__all__ if getattr(steps, name).configuration.enable_cache is False]
    return {"base_model": base.model_dump(mode="json"), "never_cached": never_cached}


def query_worker() -> dict[str, Any]:
    """In the throw-away project: the two pipeline runs' steps, statuses, durations, and why a step reran."""
    from zenml.client import Client
    from zenml.enums import ExecutionStatus

    client = Client()
    pipeline = client.get_pipeline(PIPELINE_NAME)
    runs = client.list_pipeline_runs(pipeline_id=pipeline.id, sort_by="asc:created", size=10, hydrate=True).items
    first, last = runs[0], pipeline.last_run
    report: dict[str, Any] = {"runs": []}
    for run in (first, last):
        steps = {}
        for name, step in run.steps.items():
            seconds = (step.end_time - step.start_time).total_seconds() if step.start_time and step.end_time else 0.0
            steps[name] = {"status": str(step.status.value), "seconds": seconds}
        seconds = (run.end_time - run.start_time).total_seconds() if run.start_time and run.end_time else None
        report["runs"].append({"name": run.name, "status": str(run.status.value), "seconds": seconds, "steps": steps})
    # Why each step of the rerun was or was not taken from the cache. A cached step run lists
    # the inputs of the run it was cached from; an input whose producer did run again this time
    # (ingest, base_model) is compared with that producer's new output by content hash.
    def rerun_output(input_spec: Any) -> Any:
        if isinstance(input_spec, list):
            input_spec = input_spec[0] if input_spec else None
        if input_spec is None:
            return None
        producer = last.steps.get(input_spec.step_name)
        if producer is None or producer.status == ExecutionStatus.CACHED:
            return None
        versions = producer.outputs.get(input_spec.output_name) or [None]
        return versions[0]

    notes = {}
    for name, step in last.steps.items():
        before = first.steps.get(name)
        new_inputs, changed = [], []
        for input_name, versions in step.inputs.items():
            old = (before.inputs.get(input_name, []) if before else [])
            old_ids, old_hashes = {v.id for v in old}, {v.content_hash for v in old}
            for version in versions:
                if version.id in old_ids:
                    continue
                if version.content_hash is not None and version.content_hash in old_hashes:
                    new_inputs.append(input_name)
                else:
                    changed.append(input_name + (" (no content hash)" if version.content_hash is None else ""))
        if step.status == ExecutionStatus.CACHED:
            rehashed = []
            for input_name, versions in step.inputs.items():
                spec = step.spec.inputs.get(input_name)
                new = rerun_output(spec)
                if new is not None and new.id not in {v.id for v in versions} and new.content_hash in {
                        v.content_hash for v in versions}:
                    rehashed.append(input_name)
            notes[name] = f"{', '.join(rehashed)}: new artifact, same content hash" if rehashed else ""
        elif step.config.enable_cache is False:
            notes[name] = "enable_cache=False"
        elif changed:
            notes[name] = "input changed: " + ", ".join(changed)
        elif before is not None and list(step.config.outputs) != list(before.config.outputs):
            notes[name] = (f"cache key changed: outputs in another order ({', '.join(before.config.outputs)} -> "
                           f"{', '.join(step.config.outputs)}); see below")
        else:
            notes[name] = f"cache key changed ({before.cache_key if before else None} -> {step.cache_key})"
    report["notes"] = notes
    try:
        registration = first.steps["register"].outputs["registration"][0].load()
        report["first_run_promoted"] = bool(registration.promoted)
    except Exception as error:  # noqa: BLE001 - only informative
        report["first_run_promoted"] = f"unknown ({error})"
    return report


# ---------------------------------------------------------------------------------------------
# The parent
# ---------------------------------------------------------------------------------------------


def stream(label: str, command: list[str], cwd: Path, env: dict[str, str], log: Path,
           echo: re.Pattern[str] | None = None) -> tuple[float, list[str]]:
    """Run ``command``; print its progress lines as they come; return (wall seconds, output lines)."""
    lines: list[str] = []
    started = time.perf_counter()
    with log.open("w") as handle:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, bufsize=1)
        assert process.stdout is not None
        for line in process.stdout:
            handle.write(line)
            lines.append(line.rstrip("\n"))
            match = echo.search(ANSI.sub("", line)) if echo is not None else None
            if match or line.startswith("[plain]"):
                print(f"  {time.perf_counter() - started:7.1f}s  {match.group(0) if match else line.strip()}", flush=True)
        code = process.wait()
    seconds = time.perf_counter() - started
    if code != 0:
        tail = "\n".join(lines[-60:])
        raise SystemExit(f"{label} failed ({code}); log: {log}\n{tail}")
    return seconds, lines


def result_of(lines: list[str]) -> dict[str, Any]:
    line = [line for line in lines if line.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def bench_settings(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The budget merged into local.yaml's settings tree (only options that were given)."""
    settings: dict[str, dict[str, Any]] = {"training": {"max_steps": args.max_steps}}
    evaluation = {"max_eval_examples": args.max_eval_examples, "generation_samples": args.generation_samples,
                  "max_new_tokens": args.max_new_tokens}
    settings["evaluation"] = {k: v for k, v in evaluation.items() if v is not None}
    if args.eval_steps is not None:
        settings["training"]["eval_steps"] = args.eval_steps
    return settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-steps", type=int, default=10, help="training.max_steps (default 10)")
    parser.add_argument("--eval-steps", type=int, default=None, help="training.eval_steps (default: local.yaml's)")
    parser.add_argument("--max-eval-examples", type=int, default=None,
                        help="evaluation.max_eval_examples (default: local.yaml's, all of the eval split)")
    parser.add_argument("--generation-samples", type=int, default=None,
                        help="evaluation.generation_samples (default: local.yaml's)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="evaluation.max_new_tokens (default: local.yaml's)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="scratch folder (default: a new temporary one, removed at the end unless --keep)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (ZenML repository, logs, MLflow)")
    parser.add_argument("--cache-all", action="store_true",
                        help="let the run-level enable_cache: true also cache the steps declared enable_cache=False")
    parser.add_argument("--worker", choices=["plain", "warmup", "query"], help=argparse.SUPPRESS)
    parser.add_argument("--job", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        result = {"plain": lambda: plain_worker(args.job), "warmup": lambda: warmup_worker(args.job),
                  "query": query_worker}[args.worker]()
        print("RESULT " + json.dumps(result, default=str), flush=True)
        return 0

    sys.path.insert(0, str(ROOT))
    from tests.isolated_project import isolated_project, run_command

    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="run-", dir=args.workdir))
    else:
        work = Path(tempfile.mkdtemp(prefix="bench-overhead-"))
    total_started = time.perf_counter()
    settings = bench_settings(args)
    print(f"scratch: {work}")
    print(f"budget merged into configs/local.yaml: {json.dumps(settings)}", flush=True)

    # --- untimed set-up ------------------------------------------------------------------------
    print("[setup] throw-away ZenML repository (zenml init, drugslm-local stack)", flush=True)
    project, env = isolated_project(work, settings, extra_env=ENV)
    run_command([sys.executable, "-m", "drugslm_ops.stacks.local", "--activate"], project, env)
    print("[setup] warm-up: provision the base model, import the libraries and steps once", flush=True)
    _, lines = stream("warm-up", [sys.executable, __file__, "--worker", "warmup", "--job", "configs/test.yaml"],
                      project, env, work / "warmup.log")
    never_cached = [name for name in result_of(lines)["never_cached"] if name in PHASES]
    config = yaml.safe_load((project / "configs" / "test.yaml").read_text())
    config["enable_cache"] = True  # local.yaml has false; the rerun is the point here
    if not args.cache_all:
        # A run-level enable_cache overrides every step's decorator in ZenML (compiler:
        # "Override `enable_cache` of all steps if set at run level"); per-step entries are
        # applied after it, so they restore the steps' own enable_cache=False.
        config["steps"] = {name: {"enable_cache": False} for name in never_cached}
    (project / RUN_CONFIG).write_text(yaml.safe_dump(config, sort_keys=False))
    plain_dir = work / "plain"
    plain_dir.mkdir()
    shutil.copy(project / RUN_CONFIG, plain_dir / "bench.yaml")
    plain_env = {k: v for k, v in env.items() if k not in ("ZENML_CONFIG_PATH", "PYTHONPATH")}
    print("run config: configs/local.yaml + budget + enable_cache: true"
          + (f"; steps never cached (their decorators): {', '.join(never_cached)}" if not args.cache_all
             else "; --cache-all: the run-level flag caches every step"), flush=True)

    # --- timed ---------------------------------------------------------------------------------
    print("[1/3] plain script: the same core calls, no ZenML", flush=True)
    plain_s, lines = stream("plain", [sys.executable, __file__, "--worker", "plain", "--job", str(plain_dir)],
                            plain_dir, plain_env, work / "plain.log")
    plain = result_of(lines)
    zenml_cli = [str(BIN / "zenml"), "pipeline", "run", PIPELINE, "-c", RUN_CONFIG]
    print(f"[2/3] pipeline, first run: {' '.join(zenml_cli[1:])}", flush=True)
    pipeline_s, _ = stream("pipeline", zenml_cli, project, env, work / "pipeline-1.log", ZENML_PROGRESS)
    print("[3/3] pipeline, identical rerun (cache enabled)", flush=True)
    cached_s, _ = stream("rerun", zenml_cli, project, env, work / "pipeline-2.log", ZENML_PROGRESS)

    # --- what ran where ------------------------------------------------------------------------
    _, lines = stream("query", [sys.executable, __file__, "--worker", "query"], project, env, work / "query.log")
    query = result_of(lines)
    first, rerun = query["runs"]
    steps = [name for name in PHASES if name in first["steps"]] + [n for n in first["steps"] if n not in PHASES]
    cached = [name for name, step in rerun["steps"].items() if step["status"] == "cached"]

    print()
    print(f"{'step':16s} {'plain_s':>9s} {'pipeline_s':>11s} {'rerun_s':>9s}  rerun")
    for name in steps:
        p = plain["phases"].get(name)
        step1, step2 = first["steps"][name], rerun["steps"].get(name, {})
        note = query["notes"].get(name, "")
        print(f"{name:16s} {p if p is not None else float('nan'):9.1f} {step1['seconds']:11.1f} "
              f"{step2.get('seconds', 0.0):9.1f}  {step2.get('status', '-')}{f' ({note})' if note else ''}")
    plain_steps = sum(plain["phases"].values())
    first_steps = sum(s["seconds"] for s in first["steps"].values())
    rerun_steps = sum(s["seconds"] for s in rerun["steps"].values())
    print(f"{'sum of steps':16s} {plain_steps:9.1f} {first_steps:11.1f} {rerun_steps:9.1f}")
    print(f"{'outside steps':16s} {plain_s - plain_steps:9.1f} {pipeline_s - first_steps:11.1f} {cached_s - rerun_steps:9.1f}"
          "  (interpreter, imports, compile, run bookkeeping)")
    print(f"{'process wall':16s} {plain_s:9.1f} {pipeline_s:11.1f} {cached_s:9.1f}")
    print()
    print(f"plain: {plain['examples']} examples, {plain['train']} for training, {plain['steps']} optimizer steps; "
          f"perplexity base {plain['base_perplexity']:.3f} tuned {plain['tuned_perplexity']:.3f}; promoted {plain['promoted']}")
    print(f"pipeline runs: {first['name']} ({first['status']}), {rerun['name']} ({rerun['status']}); "
          f"first run promoted: {query['first_run_promoted']}"
          + ("  -> the rerun's evaluate also evaluated that champion" if query["first_run_promoted"] is True
             and rerun["steps"].get("evaluate", {}).get("status") != "cached" else ""))
    print(f"cached in the rerun: {len(cached)}/{len(rerun['steps'])}: {', '.join(cached) or 'none'}")
    if any("outputs in another order" in note for note in query["notes"].values()):
        print("  (a step given one materializer class for several outputs gets its outputs ordered from a set in "
              "ZenML's BaseStep, so the order, and with it the cache key, changes with Python's hash seed from "
              "process to process: it hits the cache only by chance)")
    print(f"benchmark wall time, set-up included: {time.perf_counter() - total_started:.0f}s; logs under {work}")
    if args.workdir is None and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(f"BENCH pipeline overhead_ratio={pipeline_s / plain_s:.3f} cached_rerun_ratio={cached_s / pipeline_s:.3f} "
          f"plain_s={plain_s:.1f} pipeline_s={pipeline_s:.1f} cached_s={cached_s:.1f} "
          f"cached_steps={len(cached)}/{len(rerun['steps'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
