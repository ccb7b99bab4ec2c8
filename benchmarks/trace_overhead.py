"""What tracing costs the request path, with the trace store up and with it down.

    .venv/bin/python benchmarks/trace_overhead.py [--requests 200]

A served request calls ``TraceRecorder.begin`` when its answer starts and ``finish`` when it
ends; everything else (export, read-back) happens in the writer thread. This measures, per
request, the time spent in those two calls on the request's own thread:

- baseline: the same question/answer through the PII scrubber alone (what the request path
  would cost with a recorder that only scrubbed, measured in this run);
- store up: a real SQLite MLflow store (the embedded default);
- store down: an MLflow server URL where nothing listens (every write fails and is counted).

It also reports how many traces per second the writer got into the SQLite store (wall time
from the first ``finish`` until all were confirmed). Ratios are against the baseline of the same run.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import tempfile
import time
from pathlib import Path

import mlflow

from drugslm_core.config import PIISettings
from drugslm_core.data.pii import scrub_pii
from drugslm_core.feedback.traces import TraceRecorder

QUESTION = "What is the maximum daily dose of ibuprofen for an adult? Reply to ana@example.com"
ANSWER = "For adults, do not exceed 1200 mg a day without a physician's advice. " * 4


def _request_path(recorder: TraceRecorder, requests: int) -> tuple[list[float], list[str]]:
    costs, ids = [], []
    for number in range(requests):
        start = time.perf_counter()
        trace_id = recorder.begin(f"chatcmpl-{number}", QUESTION, "drugslm-v1", time.time())
        recorder.finish(trace_id, ANSWER, 40, 60, "stop", [], 0.5)
        costs.append(time.perf_counter() - start)
        if trace_id:
            ids.append(trace_id)
    return costs, ids


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    pii = PIISettings()

    baseline = []
    for _ in range(args.requests):
        start = time.perf_counter()
        scrub_pii(QUESTION, pii.kinds, pii.allow)
        scrub_pii(ANSWER, pii.kinds, pii.allow)
        baseline.append(time.perf_counter() - start)

    with tempfile.TemporaryDirectory() as folder:
        mlflow.set_tracking_uri(f"sqlite:///{Path(folder) / 'mlflow.db'}")
        up = TraceRecorder("bench-traces", pii, max_pending=args.requests + 1)
        up.start()
        _request_path(up, 5)  # warm-up: the tracer provider and the store's first writes
        time.sleep(1)
        began = time.perf_counter()
        up_costs, ids = _request_path(up, args.requests)
        for trace_id in ids:
            up.written(trace_id, 300)
        writer_s = time.perf_counter() - began
        up.stop()
        up_failures = up.failures

        os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            closed = sock.getsockname()[1]
        down = TraceRecorder("bench-traces", pii, max_pending=args.requests + 1)
        down._experiment_id = "1"  # as if the store had been reached at start-up and went away since
        mlflow.set_tracking_uri(f"http://127.0.0.1:{closed}")
        mlflow.tracing.reset()
        down.start()
        down_costs, down_ids = _request_path(down, args.requests)
        for trace_id in down_ids:
            down.written(trace_id, 300)
        down.stop()

    def us(values: list[float]) -> float:
        return statistics.median(values) * 1e6

    base, on, off = us(baseline), us(up_costs), us(down_costs)
    print(f"request path per request (median): baseline {base:.0f} us, store up {on:.0f} us "
          f"({on / base:.1f}x), store down {off:.0f} us ({off / base:.1f}x)")
    print(f"writer: {len(ids)} traces confirmed in {writer_s:.1f} s ({len(ids) / writer_s:.1f}/s), "
          f"failures up={up_failures} down={down.failures}/{args.requests}")
    print(f"BENCH trace_overhead requests={args.requests} baseline_us={base:.0f} store_up_us={on:.0f} "
          f"store_down_us={off:.0f} ratio_up={on / base:.2f} ratio_down={off / base:.2f} "
          f"writer_traces_per_s={len(ids) / writer_s:.1f} failures_down={down.failures}")


if __name__ == "__main__":
    main()
