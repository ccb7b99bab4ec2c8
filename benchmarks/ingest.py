"""Throughput of the data path over MedQuAD: ingest → clean → validate → build dataset.

    .venv/bin/python benchmarks/ingest.py [--medquad ../shared/data/medquad] [--json out.json] [--memory-mb 200]

Reads every MedQuAD subset under ``--medquad`` (bundled sample corpus off), runs the same
core functions the data pipeline's steps call, with the default settings, and prints
per-stage times, the quarantine reasons, and:

    BENCH ingest records=<n> seconds=<s> records_per_s=<r> quarantined=<q>

Then (``--memory-mb``, 200 by default, 0 skips) it generates a JSONL file of that size and
measures the peak resident memory of ``ingest_sources`` reading it, in a child process of
its own, against two baselines measured in the same run: a child that only imports the
same modules (``idle``), and a child that reads the file the way the readers did before
they streamed (whole file → bytes → text → list of lines → list of dicts → records). Last line:

    BENCH ingest_memory file_mb=<f> records=<n> peak_rss_mb=<p> idle_rss_mb=<i> rss_over_file=<(p-i)/f>
        whole_file_peak_rss_mb=<w> peak_vs_whole_file=<p/w> seconds=<s>

``records`` is the records that entered the flow (ingested + made from documents);
``seconds`` covers ingest, clean, validate and build (library import and the one-time
tokenizer load are excluded and printed separately).
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MEDQUAD = ROOT / ".." / "shared" / "data" / "medquad"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--medquad", type=Path, default=DEFAULT_MEDQUAD)
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    parser.add_argument("--memory-mb", type=int, default=200, help="size of the generated JSONL (0: skip)")
    args = parser.parse_args(argv)
    medquad = args.medquad.resolve()
    subsets = sorted(p for p in medquad.iterdir() if p.is_dir()) if medquad.is_dir() else []
    if not subsets and not args.memory_mb:
        print(f"no MedQuAD subsets under {medquad}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING)
    if subsets:
        medquad_throughput(medquad, subsets, args.json)
    else:
        print(f"no MedQuAD subsets under {medquad}: throughput part skipped", file=sys.stderr)
    if args.memory_mb:
        memory_benchmark(args.memory_mb)
    return 0


# --- peak memory of ingesting one large JSONL, in child processes ---------------------------------

CHILD_IMPORTS = (
    "import sys, json\n"
    "from pathlib import Path\n"
    "from drugslm_core.config import DataSettings, SourceFile\n"
    "from drugslm_core.data.ingest import ingest_sources\n"
    "from drugslm_core.data.records import QARecord\n"
)
# VmHWM (the peak RSS of this process image), not getrusage's ru_maxrss: Linux carries the
# parent's high-water mark over fork + exec, so a child of a large parent would report the parent's.
CHILD_REPORT = (
    "peak = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:'))\n"
    "print(json.dumps({'peak_kb': peak, 'records': n}))\n"
)
CHILDREN = {
    "idle": "n = 0\n",
    "streaming": (
        "batch = ingest_sources(DataSettings(include_sample_corpus=False, files=[SourceFile(path=Path(sys.argv[1]))]))\n"
        "n = len(batch.records)\n"
    ),
    # The pre-issue-13 reader: the whole file as bytes, then as text, then split into lines, then
    # every line parsed into a dict, and only then records.
    "whole_file": (
        "path = Path(sys.argv[1]); text = path.read_bytes().decode('utf-8-sig')\n"
        "rows = [json.loads(line) for line in text.split('\\n') if line.strip()]\n"
        "records = [QARecord(id=r['id'], question=r['question'], answer=r['answer'], focus=r['drug'], source=str(path),"
        " locator=f'line {i}') for i, r in enumerate(rows, start=1)]\n"
        "n = len(records)\n"
    ),
}


def generate_jsonl(path: Path, megabytes: int) -> int:
    """Realistic records (about 1 KB each: a question, a multi-sentence answer, some accents)."""
    target = megabytes * 1024 * 1024
    sentences = [
        "Take the tablet with a full glass of water, with or without food.",
        "Do not exceed the maximum daily dose stated on the label.",
        "Contact your doctor if you notice unusual bruising or bleeding.",
        "A dose usual é de 500 mg a cada 8 horas; não ultrapasse 4 g por dia.",
        "Store below 25 °C in the original package to protect from moisture.",
        "Elderly patients and those with kidney problems may need a lower dose.",
    ]
    written = count = 0
    with path.open("w", encoding="utf-8") as handle:
        while written < target:
            count += 1
            answer = " ".join(sentences[(count + k) % len(sentences)] for k in range(12)) + f" (leaflet {count})"
            line = json.dumps({
                "id": f"gen-{count}", "drug": f"Drug {count % 997}",
                "question": f"What should I know about taking drug {count % 997} (case {count})?", "answer": answer,
            }, ensure_ascii=False) + "\n"
            handle.write(line)
            written += len(line.encode("utf-8"))
    return count


def run_child(kind: str, path: Path) -> tuple[float, int, float]:
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", CHILD_IMPORTS + CHILDREN[kind] + CHILD_REPORT, str(path)],
        check=True, capture_output=True, text=True,
    ).stdout.strip().splitlines()[-1]
    numbers = json.loads(out)
    return numbers["peak_kb"] / 1024, numbers["records"], time.perf_counter() - started


def memory_benchmark(megabytes: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "generated.jsonl"
        lines = generate_jsonl(path, megabytes)
        file_mb = path.stat().st_size / 1024 / 1024
        idle_mb, _, _ = run_child("idle", path)
        peak_mb, records, seconds = run_child("streaming", path)
        whole_mb, whole_records, _ = run_child("whole_file", path)
    if records != lines or whole_records != lines:
        raise AssertionError(f"{lines} lines generated, {records} records ingested, {whole_records} by the baseline")
    over_file = (peak_mb - idle_mb) / file_mb
    print(f"{'generated_jsonl_mb':36s} {file_mb:.1f} ({lines} lines)")
    print(f"{'idle_rss_mb (imports only)':36s} {idle_mb:.1f}")
    print(f"{'ingest_peak_rss_mb':36s} {peak_mb:.1f}  ((peak - idle) / file = {over_file:.2f}x)")
    print(f"{'whole_file_reader_peak_rss_mb':36s} {whole_mb:.1f}  ((peak - idle) / file = {(whole_mb - idle_mb) / file_mb:.2f}x)")
    print(
        f"BENCH ingest_memory file_mb={file_mb:.1f} records={records} peak_rss_mb={peak_mb:.1f} idle_rss_mb={idle_mb:.1f} "
        f"rss_over_file={over_file:.2f} whole_file_peak_rss_mb={whole_mb:.1f} peak_vs_whole_file={peak_mb / whole_mb:.2f} "
        f"seconds={seconds:.1f}"
    )


def medquad_throughput(medquad: Path, subsets: list[Path], json_out: Path | None) -> None:

    started = time.perf_counter()
    import great_expectations  # noqa: F401  (import cost is not throughput)

    from drugslm_core.config import DataSettings, Settings, SourceFile
    from drugslm_core.data.formatting import build_instruction_dataset
    from drugslm_core.data.ingest import ingest_sources
    from drugslm_core.data.transform import clean_records
    from drugslm_core.modeling.base_model import provision_base_model
    from drugslm_core.modeling.loading import load_tokenizer
    from drugslm_core.quality.gate import apply_quality_gate

    settings = Settings()
    tokenizer = load_tokenizer(provision_base_model(settings.base_model))
    setup_s = time.perf_counter() - started

    data = DataSettings(include_sample_corpus=False, files=[SourceFile(path=p) for p in subsets])
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    ingested = ingest_sources(data)
    times["ingest"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    cleaned = clean_records(ingested.records, ingested.documents, settings.cleaning)
    times["clean"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    gate = apply_quality_gate(cleaned.records, settings.validation, upstream=cleaned.duplicates)
    times["validate"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    dataset = build_instruction_dataset(
        gate.accepted, tokenizer, settings.data.system_prompt, settings.data.domain_tag
    )
    times["build"] = time.perf_counter() - t0
    total = sum(times.values())

    records_in = gate.records_in
    if len(gate.accepted) + len(gate.quarantine) != records_in or len(dataset) != len(gate.accepted):
        raise AssertionError("records were lost between stages")
    per_subset_in = Counter(Path(r.source).parent.name for r in ingested.records.records)
    per_subset_q = Counter(Path(i.record.source).parent.name for i in gate.quarantine.items)
    reasons = Counter(reason for item in gate.quarantine.items for reason in
                      {r.split(":")[0] for r in item.reasons})
    detail = Counter(
        "duplicate_of:<id>" if r.startswith("duplicate_of:") else r for item in gate.quarantine.items for r in item.reasons
    )
    numbers = {
        "medquad": str(medquad), "files_with_records": len({r.source for r in ingested.records.records}),
        "records": records_in, "accepted": len(gate.accepted), "quarantined": len(gate.quarantine),
        "quarantined_records_by_reason_kind": dict(sorted(reasons.items())),
        "reasons": dict(sorted(detail.items())),
        "duplicates_exact": cleaned.stats.duplicates_exact, "duplicates_near": cleaned.stats.duplicates_near,
        "pii": cleaned.stats.pii, "html_stripped": cleaned.stats.html_stripped,
        "per_subset": {k: {"records": v, "quarantined": per_subset_q.get(k, 0)} for k, v in sorted(per_subset_in.items())},
        "stage_seconds": {k: round(v, 3) for k, v in times.items()}, "setup_seconds": round(setup_s, 2),
        "seconds": round(total, 3), "records_per_s": round(records_in / total, 1),
    }
    for key, value in numbers.items():
        print(f"{key:36s} {value}")
    if json_out:
        json_out.write_text(json.dumps(numbers, indent=2))
    print(
        f"BENCH ingest records={records_in} seconds={total:.2f} "
        f"records_per_s={records_in / total:.1f} quarantined={len(gate.quarantine)}"
    )


if __name__ == "__main__":
    sys.exit(main())
