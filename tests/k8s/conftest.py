"""Shared state for the offline Kubernetes manifest checks.

The schema-validation tests record what they validated in a per-session
dictionary; ``pytest_terminal_summary`` prints one summary line per Kubernetes
version plus the list of custom resources that could not be schema-checked.
"""

from __future__ import annotations

import shutil
from collections import Counter

import pytest

K8S_STATS_KEY = pytest.StashKey[dict]()


def _stats(config: pytest.Config) -> dict:
    if K8S_STATS_KEY not in config.stash:
        config.stash[K8S_STATS_KEY] = {
            "validated": Counter(),
            "zenml_generated": Counter(),
            "zenml_objects": set(),
            "not_schema_checked": set(),
        }
    return config.stash[K8S_STATS_KEY]


@pytest.fixture
def k8s_stats(request: pytest.FixtureRequest) -> dict:
    """Mutable summary of the schema validation done in this session."""
    return _stats(request.config)


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: ARG001
    stats = config.stash.get(K8S_STATS_KEY, None)
    if not stats:
        return
    validated = stats["validated"]
    if validated:
        per_version = ", ".join(
            f"{count} objects against Kubernetes {version}"
            for version, count in sorted(validated.items())
        )
        terminalreporter.write_line(f"k8s schema validation (strict): {per_version}")
    generated = stats["zenml_generated"]
    if generated:
        per_version = ", ".join(f"{count} against {version}" for version, count in sorted(generated.items()))
        terminalreporter.write_line(
            f"  of which built by ZenML's Kubernetes manifest builders from configs/: {per_version} ("
            + ", ".join(sorted(stats["zenml_objects"]))
            + ")"
        )
    if shutil.which("kubectl") is None:
        terminalreporter.write_line(
            "k8s overlays NOT rendered or validated: kubectl not found on PATH (tests/k8s/test_manifests.py skipped)"
        )
    skipped = sorted(stats["not_schema_checked"])
    if skipped:
        terminalreporter.write_line(
            "k8s not schema-checked (custom resources, structure checks only): "
            + ", ".join(skipped)
        )
