"""Prometheus metrics of one server (its own registry, so several apps can live in one process).

Names follow vLLM's (``num_requests_waiting``, ``time_to_first_token_seconds``,
``e2e_request_latency_seconds``, prompt/generation token counters) under a ``drugslm_`` prefix.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128)


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("drugslm_http_requests", "HTTP requests by route and status", ["route", "status"], registry=r)
        self.latency = Histogram(
            "drugslm_e2e_request_latency_seconds", "Chat completion latency, arrival to last token", buckets=LATENCY_BUCKETS, registry=r
        )
        self.ttft = Histogram(
            "drugslm_time_to_first_token_seconds", "Arrival to first generated text", buckets=LATENCY_BUCKETS, registry=r
        )
        self.prompt_tokens = Counter("drugslm_prompt_tokens", "Prompt tokens processed", registry=r)
        self.generation_tokens = Counter("drugslm_generation_tokens", "Tokens generated", registry=r)
        self.waiting = Gauge("drugslm_num_requests_waiting", "Requests queued for a batch slot", registry=r)
        self.running = Gauge("drugslm_num_requests_running", "Sequences in the running batch", registry=r)
        self.batch_size = Histogram(
            "drugslm_batch_size", "Sequences per forward pass", buckets=(1, 2, 4, 8, 12, 16, 24, 32, 64), registry=r
        )
        self.model_info = Info("drugslm_model", "The served model version", registry=r)
        self.model_version = Gauge("drugslm_model_version", "The served registry version number", registry=r)
        self.reload_failures = Counter("drugslm_model_reload_failures", "Failed loads of a new alias holder", registry=r)
        self.cancelled = Counter(
            "drugslm_requests_cancelled", "Requests that left the batch unfinished (timeout or client gone)", registry=r
        )
        self.reloads = Counter("drugslm_model_reloads", "Successful swaps to a new alias holder", registry=r)
        self.trace_failures = Counter(
            "drugslm_trace_failures", "Served requests whose MLflow trace was not written, by reason", ["reason"], registry=r
        )

    def served(self, name: str, version: str, model_id: str) -> None:
        self.model_info.info({"name": name, "version": version, "id": model_id})
        if version.isdigit():
            self.model_version.set(int(version))
