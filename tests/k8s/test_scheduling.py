"""Scheduling consistency: can the pods that need the GPU pool land there?

A small model of the scheduler's label/taint rules over the rendered overlays and the
objects ZenML would submit:

* the nodes of the Karpenter NodePool carry its template labels, the single-valued
  ``In`` requirements and ``karpenter.sh/nodepool``, and its taints;
* the ``finetune`` step pod (built by ZenML's builders from configs/k8s-gpu.yaml) must
  select and tolerate those nodes; CPU step pods must not tolerate the GPU taint;
* the NVIDIA device plugin DaemonSet (the chart's default scheduling values with
  ``k8s/helm/nvidia-device-plugin-values.yaml`` merged over them the way Helm merges
  values) must be schedulable on those nodes, or no node ever advertises nvidia.com/gpu.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("zenml.integrations.kubernetes.manifest_utils", reason="zenml[kubernetes] is not installed")

from drugslm_ops import k8s_manifests as km  # noqa: E402
from tests.k8s import rendered  # noqa: E402

pytestmark = pytest.mark.skipif(rendered.KUBECTL is None, reason="kubectl not found: overlays cannot be rendered")

REPO_ROOT = Path(__file__).resolve().parents[2]
PLUGIN_VALUES = REPO_ROOT / "k8s" / "helm" / "nvidia-device-plugin-values.yaml"
RUNBOOK = REPO_ROOT / "docs" / "kubernetes.md"
GPU = "nvidia.com/gpu"

# Scheduling part of the chart's values.yaml (NVIDIA/k8s-device-plugin,
# deployments/helm/nvidia-device-plugin, unchanged across the 0.1x charts):
# a required node affinity on NFD's labels or nvidia.com/gpu.present=true.
CHART_DEFAULTS: dict[str, Any] = {
    "nodeSelector": {},
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "feature.node.kubernetes.io/pci-10de.present", "operator": "In", "values": ["true"]}]},
                    {"matchExpressions": [{"key": "feature.node.kubernetes.io/cpu-model.vendor_id", "operator": "In", "values": ["NVIDIA"]}]},
                    {"matchExpressions": [{"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}]},
                ]
            }
        }
    },
    "tolerations": [
        {"key": "CriticalAddonsOnly", "operator": "Exists"},
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
    ],
}


def helm_merge(defaults: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """Helm's coalescing of user values over chart defaults: maps merge, lists and scalars replace."""
    merged = copy.deepcopy(defaults)
    for key, value in values.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = helm_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def node_of(nodepool: dict[str, Any]) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """(labels, taints) of a node Karpenter launches for ``nodepool``."""
    template = nodepool["spec"]["template"]
    labels = dict(template.get("metadata", {}).get("labels") or {})
    labels["karpenter.sh/nodepool"] = nodepool["metadata"]["name"]
    for requirement in template["spec"].get("requirements") or []:
        if requirement["operator"] == "In" and len(requirement["values"]) == 1:
            labels[requirement["key"]] = requirement["values"][0]
    return labels, list(template["spec"].get("taints") or [])


def expression_matches(expression: dict[str, Any], labels: dict[str, str]) -> bool:
    key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
    if operator == "In":
        return labels.get(key) in values
    if operator == "NotIn":
        return labels.get(key) not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    raise AssertionError(f"operator {operator} not modelled")


def schedulable(spec: dict[str, Any], labels: dict[str, str], taints: list[dict[str, Any]]) -> list[str]:
    """Why a pod with ``spec`` (camelCase) cannot run on a node: [] when it can."""
    reasons = []
    for key, value in (spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            reasons.append(f"nodeSelector {key}={value} not on the node")
    required = (
        (spec.get("affinity") or {}).get("nodeAffinity", {}).get("requiredDuringSchedulingIgnoredDuringExecution")
    )
    if required:
        terms = required["nodeSelectorTerms"]
        if not any(all(expression_matches(e, labels) for e in t.get("matchExpressions") or []) for t in terms):
            reasons.append(f"required node affinity matches no term: {terms}")
    for taint in taints:
        if taint["effect"] in ("NoSchedule", "NoExecute") and not any(
            tolerates(t, taint) for t in spec.get("tolerations") or []
        ):
            reasons.append(f"taint {taint['key']}={taint.get('value')}:{taint['effect']} not tolerated")
    return reasons


def tolerates(toleration: dict[str, Any], taint: dict[str, Any]) -> bool:
    if toleration.get("effect") and toleration["effect"] != taint["effect"]:
        return False
    if toleration.get("operator", "Equal") == "Exists":
        return not toleration.get("key") or toleration["key"] == taint["key"]
    return toleration.get("key") == taint["key"] and toleration.get("value", "") == taint.get("value", "")


@pytest.fixture(scope="module")
def run_config():
    return km.load_run_config(REPO_ROOT / "configs" / "k8s-gpu.yaml")


@pytest.mark.parametrize("overlay", rendered.OVERLAYS)
def test_gpu_step_pods_land_on_the_gpu_pool_and_cpu_steps_do_not(overlay: str, run_config) -> None:
    labels, taints = node_of(rendered.find(overlay, "NodePool", "drugslm-gpu"))
    assert any(t["key"] == GPU for t in taints), "the GPU pool must be tainted against CPU pods"
    for step in ("finetune", "evaluate"):
        spec = km.pod_spec(km.to_manifest(km.build_step_job(run_config, step)))
        assert schedulable(spec, labels, taints) == [], step
        (container,) = spec["containers"]
        assert container["resources"]["limits"][GPU] == "1", step
    ingest = km.pod_spec(km.to_manifest(km.build_step_job(run_config, "ingest")))
    assert schedulable(ingest, labels, taints), "a CPU step pod would be allowed onto the GPU pool"


@pytest.mark.parametrize("overlay", rendered.OVERLAYS)
def test_device_plugin_daemonset_runs_on_the_gpu_pool(overlay: str) -> None:
    labels, taints = node_of(rendered.find(overlay, "NodePool", "drugslm-gpu"))
    values = helm_merge(CHART_DEFAULTS, yaml.safe_load(PLUGIN_VALUES.read_text()))
    reasons = schedulable(values, labels, taints)
    assert reasons == [], (
        f"no NVIDIA device plugin pod would run on the GPU nodes ({labels}): {reasons}; "
        "nothing would advertise nvidia.com/gpu and finetune stays Pending"
    )
    # An install with the chart's own values (e.g. the plain runbook command of older
    # versions) must work too: the pool labels its nodes nvidia.com/gpu.present=true.
    assert schedulable(CHART_DEFAULTS, labels, taints) == []


def test_runbook_installs_the_device_plugin_with_the_values_file() -> None:
    text = RUNBOOK.read_text()
    commands = re.findall(r"helm upgrade --install nvdp nvdp/nvidia-device-plugin(?:[^\n]*\\\n)*[^\n]*", text)
    assert commands, "docs/kubernetes.md no longer installs the device plugin"
    for command in commands:
        assert "-f k8s/helm/nvidia-device-plugin-values.yaml" in command, command
        assert "nodeSelector" not in command, "a --set nodeSelector next to the chart's affinity is ANDed with it"


@pytest.mark.parametrize("overlay", rendered.OVERLAYS)
def test_training_pool_is_on_demand(overlay: str) -> None:
    requirements = rendered.find(overlay, "NodePool", "drugslm-gpu")["spec"]["template"]["spec"]["requirements"]
    (capacity,) = [r for r in requirements if r["key"] == "karpenter.sh/capacity-type"]
    assert capacity == {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]}
