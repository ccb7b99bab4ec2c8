"""Load test of `drugslm serve`: concurrent `openai` clients on loopback vs sequential `generate`.

    .venv/bin/python benchmarks/serve_load.py [--clients 1 4 8 16] [--requests 16] [--max-tokens 32]
                                              [--profile out/serve.pyspy.txt]

In one run: registers a LoRA adapter (fresh, rank 4) in a throw-away MLflow registry,
measures the baseline — plain transformers ``generate`` of the same prompts, one after
the other, greedy, same ``max_tokens``, with the KV cache, before and after the server runs
(the faster one counts: the machine may be shared) — then starts ``drugslm serve
--version 1`` in a subprocess on a loopback port and, for each client count, sends the
same prompts from that many threads (one ``openai.OpenAI`` client each), non-streamed and
streamed. Tokens/s counts the completion tokens the server reports (``usage``).
``--profile`` samples the server with py-spy during the 8-client non-streamed run.

Last line: ``BENCH serve clients=8 tokens_per_s=… baseline_tokens_per_s=… ratio=… p50_ms=…
p95_ms=… ttft_p50_ms=… errors=…`` (8 streamed clients: tokens/s, latency and time to first token).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from queue import Empty, Queue
from typing import Any

import httpx

MODEL = "drugslm-bench"
KEY = "bench-key"


def register_adapter(root: Path) -> str:
    """A fresh LoRA adapter on the 4-bit base, registered as version 1; returns the tracking URI."""
    import mlflow
    from peft import LoraConfig, get_peft_model

    from drugslm_core.config import BaseModelSettings
    from drugslm_core.modeling.base_model import provision_base_model
    from drugslm_core.modeling.loading import load_quantized_base

    uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    base = provision_base_model(BaseModelSettings())
    adapter = root / "adapter"
    config = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM")
    get_peft_model(load_quantized_base(base), config).save_pretrained(adapter)
    client = mlflow.MlflowClient()
    client.create_registered_model(MODEL)
    mlflow.set_experiment("serve-load")
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(adapter), artifact_path="adapter")
    client.create_model_version(MODEL, source=f"runs:/{run.info.run_id}/adapter", run_id=run.info.run_id,
                                tags={"base_model_sha256": base.sha256})
    return uri


def questions(count: int) -> list[str]:
    from drugslm_core.evaluation.benchmark import load_benchmark

    items = [item.question for item in load_benchmark().items]
    return [items[i % len(items)] for i in range(count)]


def baseline(uri: str, prompts: list[str], max_tokens: int) -> dict[str, float]:
    """Sequential plain ``generate`` of the served version (same loader, same prompt format)."""
    import mlflow
    import torch

    from drugslm_core.config import BaseModelSettings
    from drugslm_core.serving.model import load_served_model
    from drugslm_core.serving.protocol import ChatMessage

    mlflow.set_tracking_uri(uri)
    served = load_served_model(MODEL, None, BaseModelSettings(), version="1")
    ids = [served.prompt_ids([ChatMessage(role="user", content=p)]) for p in prompts]
    with torch.inference_mode():  # warm-up
        served.model.generate(torch.tensor([ids[0]]), max_new_tokens=2, do_sample=False, use_cache=True,
                              pad_token_id=served.tokenizer.pad_token_id)
    tokens, began = 0, time.perf_counter()
    for row in ids:
        with torch.inference_mode():
            out = served.model.generate(
                torch.tensor([row]), attention_mask=torch.ones(1, len(row), dtype=torch.long), max_new_tokens=max_tokens,
                do_sample=False, use_cache=True, pad_token_id=served.tokenizer.pad_token_id,
            )
        tokens += out.shape[1] - len(row)
    seconds = time.perf_counter() - began
    del served
    return {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(uri: str, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DRUGSLM_API_KEYS": KEY, "MLFLOW_TRACKING_URI": uri, "LOG_LEVEL": "warning",
           "DRUGSLM_SERVING__MAX_QUEUE": "256"}
    drugslm = Path(sys.executable).with_name("drugslm")
    log = log_path.open("wb")
    process = subprocess.Popen(
        [str(drugslm), "serve", "--model-name", MODEL, "--version", "1", "--port", str(port),
         "--config", "configs/local.yaml"], env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 300
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited ({process.returncode}); see {log_path}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.terminate()
            raise RuntimeError(f"the server was not ready in 300 s; see {log_path}")
        time.sleep(0.5)


def load_level(url: str, prompts: list[str], clients: int, max_tokens: int, stream: bool) -> dict[str, Any]:
    import openai

    work: Queue[str] = Queue()
    for prompt in prompts:
        work.put(prompt)
    latencies: list[float] = []
    ttfts: list[float] = []
    tokens = [0]
    errors: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0, timeout=600)
        while True:
            try:
                prompt = work.get_nowait()
            except Empty:
                return
            messages = [{"role": "user", "content": prompt}]
            began = time.perf_counter()
            try:
                if stream:
                    first, used = None, 0
                    for chunk in client.chat.completions.create(
                        model=MODEL, messages=messages, max_tokens=max_tokens, stream=True,  # type: ignore[arg-type]
                        stream_options={"include_usage": True},
                    ):
                        if first is None and chunk.choices and chunk.choices[0].delta.content:
                            first = time.perf_counter() - began
                        if chunk.usage is not None:
                            used = chunk.usage.completion_tokens
                    elapsed = time.perf_counter() - began
                    with lock:
                        ttfts.append(first if first is not None else elapsed)
                else:
                    completion = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=max_tokens)  # type: ignore[arg-type]
                    used = completion.usage.completion_tokens if completion.usage else 0
                    elapsed = time.perf_counter() - began
            except Exception as error:  # counted, reported: the benchmark must not hide failures
                with lock:
                    errors.append(repr(error))
                continue
            with lock:
                latencies.append(elapsed)
                tokens[0] += used

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    return {
        "clients": clients, "stream": stream, "requests": len(latencies), "errors": len(errors),
        "first_error": errors[0] if errors else None, "tokens": tokens[0], "seconds": round(seconds, 2),
        "tokens_per_s": tokens[0] / seconds,
        "p50_ms": _percentile(latencies, 50) * 1000, "p95_ms": _percentile(latencies, 95) * 1000,
        "ttft_p50_ms": _percentile(ttfts, 50) * 1000 if ttfts else None,
    }


def _percentile(values: list[float], q: int) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--requests", type=int, default=16, help="requests per load level (at least one per client)")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--profile", type=Path, default=None, help="py-spy output (raw folded stacks) for 8 clients")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="drugslm-serve-load-"))
    uri = register_adapter(root)
    prompts = questions(args.requests)
    # The machine is shared: the baseline is measured before and after the server runs and the
    # faster of the two is kept, so a load spike during the baseline cannot inflate the ratio.
    first = baseline(uri, prompts, args.max_tokens)
    print(json.dumps({"baseline": "sequential generate (before)", **{k: round(v, 2) for k, v in first.items()}}), flush=True)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(uri, port, root / "server.log")
    rows: list[dict[str, Any]] = []
    try:
        load_level(url, prompts[:2], 2, 4, False)  # warm-up
        for clients in args.clients:
            for stream in (False, True):
                profiler = None
                if args.profile and clients == 8 and not stream and shutil.which("py-spy"):
                    args.profile.parent.mkdir(parents=True, exist_ok=True)
                    profiler = subprocess.Popen(["py-spy", "record", "--pid", str(server.pid), "--format", "raw",
                                                 "--output", str(args.profile), "--rate", "50", "--threads"],
                                                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
                level_prompts = [prompts[i % len(prompts)] for i in range(max(len(prompts), clients))]
                row = load_level(url, level_prompts, clients, args.max_tokens, stream)
                if profiler is not None:
                    profiler.send_signal(2)  # SIGINT: py-spy writes what it sampled
                    profiler.wait(60)
                row["ratio"] = row["tokens_per_s"] / first["tokens_per_s"]  # provisional: see below
                rows.append(row)
                print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    finally:
        server.terminate()
        server.wait(30)
    second = baseline(uri, prompts, args.max_tokens)
    print(json.dumps({"baseline": "sequential generate (after)", **{k: round(v, 2) for k, v in second.items()}}), flush=True)
    base = max(first, second, key=lambda b: b["tokens_per_s"])
    for row in rows:
        row["ratio"] = row["tokens_per_s"] / base["tokens_per_s"]
    one = {r["stream"]: r["tokens_per_s"] for r in rows if r["clients"] == 1}
    print(json.dumps({"ratio_vs_baseline": {f"{r['clients']}{'s' if r['stream'] else ''}": round(r["ratio"], 2) for r in rows},
                      "gain_vs_1_client": {f"{r['clients']}{'s' if r['stream'] else ''}": round(r["tokens_per_s"] / one[r["stream"]], 2)
                                           for r in rows if r["stream"] in one}}), flush=True)
    errors = sum(row["errors"] for row in rows)
    pick = next((r for r in rows if r["clients"] == 8 and r["stream"]), rows[-1])
    print(
        f"BENCH serve clients={pick['clients']} tokens_per_s={pick['tokens_per_s']:.1f} "
        f"baseline_tokens_per_s={base['tokens_per_s']:.1f} ratio={pick['ratio']:.2f} p50_ms={pick['p50_ms']:.0f} "
        f"p95_ms={pick['p95_ms']:.0f} ttft_p50_ms={pick['ttft_p50_ms']:.0f} errors={errors}"
    )


if __name__ == "__main__":
    main()
