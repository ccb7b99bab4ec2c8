"""The overlays under k8s/overlays rendered once per session with ``kubectl kustomize``."""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = ("dev", "prod")
KUBECTL = shutil.which("kubectl")


@functools.cache
def render(overlay: str) -> tuple[dict[str, Any], ...]:
    """The objects of ``k8s/overlays/<overlay>`` (kubectl bundles kustomize; no cluster needed)."""
    if KUBECTL is None:
        raise RuntimeError("kubectl not found on PATH: the overlays cannot be rendered")
    proc = subprocess.run(
        [KUBECTL, "kustomize", str(REPO_ROOT / "k8s" / "overlays" / overlay)],
        capture_output=True, text=True, timeout=120, check=True,
    )
    return tuple(doc for doc in yaml.safe_load_all(proc.stdout) if doc)


def find(overlay: str, kind: str, name: str) -> dict[str, Any]:
    for obj in render(overlay):
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    raise AssertionError(f"{overlay}: {kind}/{name} not in the rendered overlay")


def configmaps(overlay: str) -> dict[str, dict[str, str]]:
    return {o["metadata"]["name"]: o.get("data") or {} for o in render(overlay) if o["kind"] == "ConfigMap"}


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj["spec"]
    if obj["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec if obj["kind"] == "Pod" else spec["template"]["spec"]


def workloads(overlay: str) -> list[dict[str, Any]]:
    kinds = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"}
    return [o for o in render(overlay) if o["kind"] in kinds]
