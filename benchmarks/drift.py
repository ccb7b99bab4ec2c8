"""Detection power and false alarms of the monitoring's drift decision, and knowledge-base changes found.

    .venv/bin/python benchmarks/drift.py [--draws 20] [--resamples 40] [--n 200] [--mix 0.25]

Pool: the bundled corpus's questions plus the benchmark's user-phrased ones. Each draw compares
a reference sample of ``n`` questions with a current sample of ``n``:

- false alarm: the current sample is another sample of the same pool (``--resamples`` draws);
- off-domain: ``--mix`` of the current questions replaced by everyday non-drug questions;
- another language: ``--mix`` of them replaced by Portuguese drug questions;
- changed dose in 5 % of leaflets (2 of 40): a dose number changed in their dosage section; the
  knowledge-base comparison must name each changed leaflet (``kb_changes_found``).

The decision is the monitoring's own (``measure_drift`` with the default ``monitoring`` settings,
Evidently's TF-IDF and MiniLM domain classifiers and the descriptor tests). Baseline measured in the
same run: one Evidently ``Report`` run of the same text drift metric, against which the direct
decision's time is printed as a ratio. Last line:

    BENCH drift power=<p> false_alarm=<f> kb_changes_found=<k>/<K>
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from importlib.resources import files

import numpy as np

OFF_DOMAIN = [
    "What is the cheapest way to get from {a} to {b} by train?",
    "Which museums in {a} are open on Sunday mornings?",
    "How long should I cook rice for {n} people?",
    "Can you recommend a good laptop for students under {n}00 dollars?",
    "What will the weather be like in {a} next week?",
    "How do I change a flat tyre on a bicycle?",
    "Which football team won the league in {a} last season?",
    "How many calories does a {n} km run burn?",
]
PLACES = ["Paris", "Rome", "Lisbon", "Tokyo", "Cairo", "Lima", "Oslo", "Quito", "Porto", "Madrid"]
PORTUGUESE = [
    "Para que serve o {d}?",
    "Qual é a dose habitual de {d} para adultos?",
    "Quais são os efeitos colaterais mais comuns do {d}?",
    "Posso tomar {d} durante a gravidez?",
    "Como devo guardar o {d}?",
    "O {d} interage com outros medicamentos?",
    "Quem não deve tomar {d}?",
    "O que fazer se eu esquecer uma dose de {d}?",
]
NUMBER = re.compile(r"\b(\d+)\b")  # the first number of the dosage section: a dose, a count or a duration


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--draws", type=int, default=20, help="draws per shift")
    parser.add_argument("--resamples", type=int, default=40, help="no-shift draws (false alarms)")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--mix", type=float, default=0.25, help="share of shifted questions in a shifted batch")
    args = parser.parse_args()

    from drugslm_core.config import MonitoringSettings
    from drugslm_core.data.records import RecordBatch
    from drugslm_core.data.sample_corpus import leaflet_records
    from drugslm_core.monitoring.drift import measure_drift, minilm_embedder
    from drugslm_core.monitoring.knowledge_base import compare
    from drugslm_core.monitoring.reference import from_records

    rng = random.Random(7)
    records = leaflet_records()
    benchmark = json.loads(files("drugslm_core.data.benchmark").joinpath("drug_benchmark_v1.json").read_text())["questions"]
    drugs = sorted({r.focus for r in records})
    pool = [r.question for r in records if r.question] + [q["question"] for q in benchmark]
    off = [t.format(a=rng.choice(PLACES), b=rng.choice(PLACES), n=rng.randint(2, 12)) for t in OFF_DOMAIN for _ in range(12)]
    portuguese = [t.format(d=d) for t in PORTUGUESE for d in drugs]
    texts = sorted(set(pool) | set(off) | set(portuguese))
    started = time.perf_counter()
    vectors = dict(zip(texts, minilm_embedder()(texts)))
    print(f"embedded {len(texts)} texts in {time.perf_counter() - started:.1f}s")
    settings = MonitoringSettings()

    def decide(reference: list[str], current: list[str]) -> bool:
        scores = measure_drift(reference, current, drugs, settings,
                               np.stack([vectors[t] for t in reference]), np.stack([vectors[t] for t in current]))
        return scores.drifted

    def sample(k: int) -> list[str]:
        return [rng.choice(pool) for _ in range(k)]

    decide(sample(args.n), sample(args.n))  # warm-up: the null quantile is computed once per size
    started = time.perf_counter()
    alarms = sum(decide(sample(args.n), sample(args.n)) for _ in range(args.resamples))
    decision_s = (time.perf_counter() - started) / args.resamples
    false_alarm = alarms / args.resamples
    shifted = int(round(args.mix * args.n))
    found = {}
    for name, source in (("off_domain", off), ("another_language", portuguese)):
        hits = sum(decide(sample(args.n), sample(args.n - shifted) + [rng.choice(source) for _ in range(shifted)])
                   for _ in range(args.draws))
        found[name] = hits / args.draws
        print(f"{name}: {args.mix:.0%} of {args.n} questions shifted, detected in {hits}/{args.draws} draws")
    power = min(found.values())

    reference = from_records(RecordBatch(records=records), "reference")
    changes = changes_found = wrong = 0
    for _ in range(args.draws):
        chosen = set(rng.sample(drugs, max(1, round(0.05 * len(drugs)))))
        changed = []
        for r in records:
            if r.focus in chosen and r.section == "dosage" and NUMBER.search(r.answer or ""):
                match = NUMBER.search(r.answer)
                answer = r.answer[: match.start(1)] + str(int(match.group(1)) + 50) + r.answer[match.end(1):]
                changed.append(r.model_copy(update={"answer": answer}))
            else:
                changed.append(r)
        really = {r.focus for r, c in zip(records, changed) if r.answer != c.answer}
        kb = compare(reference.leaflets, from_records(RecordBatch(records=changed), "current").leaflets, benchmark)
        reported = {c.drug for c in kb.changed}
        changes += len(really)
        changes_found += len(really & reported)
        wrong += len(reported - really) + len(kb.new) + len(kb.removed)
    print(f"changed dose in 5% of leaflets: {changes_found}/{changes} changed leaflets named, {wrong} wrongly named")

    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    definition = DataDefinition(text_columns=["question"])
    started = time.perf_counter()
    Report([ValueDrift(column="question", method="perc_text_content_drift", threshold=settings.text_drift_threshold)]).run(
        reference_data=Dataset.from_pandas(pd.DataFrame({"question": sample(args.n)}), data_definition=definition),
        current_data=Dataset.from_pandas(pd.DataFrame({"question": sample(args.n)}), data_definition=definition),
    )
    report_s = time.perf_counter() - started
    print(f"one full decision (text + embeddings + descriptors) {decision_s:.2f}s vs an Evidently Report run of the "
          f"text metric alone {report_s:.2f}s: ratio {decision_s / report_s:.3f}")
    print(f"power per shift {found}; false alarms {alarms}/{args.resamples}")
    print(f"BENCH drift power={power:.2f} false_alarm={false_alarm:.3f} kb_changes_found={changes_found}/{changes} "
          f"n={args.n} mix={args.mix} draws={args.draws} resamples={args.resamples} decision_vs_report={decision_s / report_s:.3f}")


if __name__ == "__main__":
    main()
