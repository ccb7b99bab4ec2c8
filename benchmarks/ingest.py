"""Throughput of the data path over MedQuAD: ingest → clean → validate → build dataset.

    .venv/bin/python benchmarks/ingest.py [--medquad ../shared/data/medquad] [--json out.json]

Reads every MedQuAD subset under ``--medquad`` (bundled sample corpus off), runs the same
core functions the data pipeline's steps call, with the default settings, and prints
per-stage times, the quarantine reasons, and as its last line:

    BENCH ingest records=<n> seconds=<s> records_per_s=<r> quarantined=<q>

``records`` is the records that entered the flow (ingested + made from documents);
``seconds`` covers ingest, clean, validate and build (library import and the one-time
tokenizer load are excluded and printed separately).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MEDQUAD = ROOT / ".." / "shared" / "data" / "medquad"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--medquad", type=Path, default=DEFAULT_MEDQUAD)
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args(argv)
    medquad = args.medquad.resolve()
    subsets = sorted(p for p in medquad.iterdir() if p.is_dir()) if medquad.is_dir() else []
    if not subsets:
        print(f"no MedQuAD subsets under {medquad}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING)

    started = time.perf_counter()
    from drugslm_core.config import DataSettings, Settings, SourceFile
    from drugslm_core.data.formatting import build_instruction_dataset
    from drugslm_core.data.ingest import ingest_sources
    from drugslm_core.data.transform import clean_records
    from drugslm_core.modeling.base_model import provision_base_model
    from drugslm_core.modeling.loading import load_tokenizer
    from drugslm_core.quality.gate import apply_quality_gate

    import great_expectations  # noqa: F401  (import cost is not throughput)

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
    if args.json:
        args.json.write_text(json.dumps(numbers, indent=2))
    print(
        f"BENCH ingest records={records_in} seconds={total:.2f} "
        f"records_per_s={records_in / total:.1f} quarantined={len(gate.quarantine)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
