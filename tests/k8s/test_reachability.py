"""A small reachability model: every Service a pod talks to resolves and is admitted.

For each client pod (the serving Deployment, the ZenML step and orchestrator pods in
`drugslm`, the KFP step pods in the KFP namespace, the MinIO bucket Job) and each URL it
uses (from its env/args, or from the stack scripts that register the endpoints the step
pods receive), over the rendered objects:

1. the host resolves from the client's namespace the way cluster DNS does (``svc``
   only in the same namespace; ``svc.ns``, ``svc.ns.svc[.cluster.local]`` anywhere) to a
   Service that exists and exposes the port;
2. the Service selects pods, and the NetworkPolicies selecting those pods admit the
   client (pod selector in the policy's namespace, namespace selector on the namespace
   labels, ports against the resolved target port);
3. for MLflow, the Host header is in ``MLFLOW_SERVER_ALLOWED_HOSTS``.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

pytest.importorskip("zenml.integrations.kubernetes.manifest_utils", reason="zenml[kubernetes] is not installed")

from drugslm_ops import k8s_manifests as km  # noqa: E402
from tests.k8s import podsim, rendered  # noqa: E402

pytestmark = pytest.mark.skipif(rendered.KUBECTL is None, reason="kubectl not found: overlays cannot be rendered")

REPO_ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "drugslm"


def script_default(script: str, variable: str) -> str:
    """``VAR="${ENV:-default}"`` or ``VAR="value"`` in a stacks/*.sh script."""
    text = (REPO_ROOT / "stacks" / script).read_text()
    match = re.search(rf'^{variable}="(?:\$\{{\w+:-)?([^}}"]*)\}}?"', text, re.M)
    assert match, f"{variable} not set in stacks/{script}"
    return match.group(1)


def render_with_component(overlay: str, component: str, tmp_path: Path) -> list[dict[str, Any]]:
    folder = tmp_path / f"{overlay}-{component}"
    folder.mkdir()
    (folder / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(REPO_ROOT / "k8s" / "overlays" / overlay, folder)],
        "components": [os.path.relpath(REPO_ROOT / "k8s" / "components" / component, folder)],
    }))
    out = subprocess.run([rendered.KUBECTL, "kustomize", str(folder)], capture_output=True, text=True, check=True)
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


# --------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------


def resolve(host: str, client_namespace: str) -> tuple[str, str] | None:
    """(service, namespace) that cluster DNS (search path of a pod) gives ``host``, or None."""
    parts = host.split(".")
    if len(parts) == 1:
        return parts[0], client_namespace
    if len(parts) == 2 or parts[2:] in (["svc"], ["svc", "cluster", "local"]):
        return parts[0], parts[1]
    return None


def labels_match(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if not selector:
        return True
    if not (selector.get("matchLabels") or {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions") or []:
        value = labels.get(expression["key"])
        operator = expression["operator"]
        if operator == "In" and value not in expression["values"]:
            return False
        if operator == "NotIn" and value in expression["values"]:
            return False
        if operator == "Exists" and expression["key"] not in labels:
            return False
        if operator == "DoesNotExist" and expression["key"] in labels:
            return False
    return True


def namespace_labels(objects: list[dict[str, Any]], namespace: str) -> dict[str, str]:
    labels = {"kubernetes.io/metadata.name": namespace}
    for obj in objects:
        if obj["kind"] == "Namespace" and obj["metadata"]["name"] == namespace:
            labels.update(obj["metadata"].get("labels") or {})
    return labels


def namespace_of(obj: dict[str, Any]) -> str:
    return obj["metadata"].get("namespace", NAMESPACE)


def template_labels(obj: dict[str, Any]) -> dict[str, str]:
    spec = obj["spec"]["jobTemplate"]["spec"] if obj["kind"] == "CronJob" else obj["spec"]
    return spec["template"]["metadata"].get("labels") or {}


def reach(objects: list[dict[str, Any]], client_ns: str, client_labels: dict[str, str], url: str) -> list[str]:
    """Why ``url`` is unreachable from a pod (namespace, labels): [] when it is reachable."""
    parts = urlsplit(url)
    target = resolve(parts.hostname, client_ns)
    if target is None:
        return [f"{parts.hostname} is not a cluster service name"]
    name, namespace = target
    services = [o for o in objects if o["kind"] == "Service" and o["metadata"]["name"] == name and namespace_of(o) == namespace]
    if not services:
        return [f"{parts.hostname} from namespace {client_ns}: no Service {namespace}/{name}"]
    (service,) = services
    port = parts.port or {"http": 80, "https": 443}[parts.scheme]
    ports = [p for p in service["spec"]["ports"] if p["port"] == port]
    if not ports:
        return [f"Service {namespace}/{name} has no port {port}"]
    target_port = ports[0].get("targetPort", port)
    backends = [
        o for o in rendered_workloads(objects)
        if namespace_of(o) == namespace and labels_match({"matchLabels": service["spec"]["selector"]}, template_labels(o))
    ]
    if not backends:
        return [f"Service {namespace}/{name} selects no pods"]
    reasons = []
    for backend in backends:
        pod_labels = template_labels(backend)
        number = target_port
        if isinstance(target_port, str):
            number = next(
                p["containerPort"] for c in rendered.pod_spec(backend)["containers"] for p in c.get("ports") or []
                if p.get("name") == target_port
            )
        policies = [
            p for p in objects
            if p["kind"] == "NetworkPolicy" and namespace_of(p) == namespace
            and "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
            and labels_match(p["spec"].get("podSelector") or {}, pod_labels)
        ]
        if policies and not any(_admits(p, objects, client_ns, client_labels, number) for p in policies):
            reasons.append(
                f"{backend['kind']}/{backend['metadata']['name']}:{number} does not admit pods of namespace "
                f"{client_ns} with labels {client_labels} (policies {[p['metadata']['name'] for p in policies]})"
            )
    return reasons


def _admits(policy: dict[str, Any], objects, client_ns: str, client_labels: dict[str, str], port: int) -> bool:
    for rule in policy["spec"].get("ingress") or []:
        if rule.get("ports") and not any(p.get("port") == port for p in rule["ports"]):
            continue
        peers = rule.get("from")
        if not peers:
            return True
        for peer in peers:
            if "ipBlock" in peer:
                continue
            if "namespaceSelector" in peer:
                ns_ok = labels_match(peer["namespaceSelector"], namespace_labels(objects, client_ns))
            else:
                ns_ok = client_ns == namespace_of(policy)
            if ns_ok and labels_match(peer.get("podSelector") or {}, client_labels):
                return True
    return False


def rendered_workloads(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    kinds = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}
    return [o for o in objects if o["kind"] in kinds]


def mlflow_host_allowed(objects: list[dict[str, Any]], url: str) -> bool:
    mlflow = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "mlflow")
    (container,) = rendered.pod_spec(mlflow)["containers"]
    allowed = next(e["value"] for e in container["env"] if e["name"] == "MLFLOW_SERVER_ALLOWED_HOSTS").split(",")
    netloc = urlsplit(url).netloc
    host = netloc.split(":")[0]
    return netloc in allowed or f"{host}:*" in allowed


# --------------------------------------------------------------------------
# Clients and the URLs they use
# --------------------------------------------------------------------------

MLFLOW_URI = script_default("k8s.sh", "MLFLOW_URI")
DEV_S3_ENDPOINT = script_default("k8s.sh", "DEV_S3_ENDPOINT")
KFP_NAMESPACE = script_default("kubeflow.sh", "KFP_NAMESPACE")


def step_pod_labels() -> dict[str, str]:
    run_config = km.load_run_config(REPO_ROOT / "configs" / "k8s-gpu.yaml")
    return km.to_manifest(km.build_step_job(run_config, "finetune"))["spec"]["template"]["metadata"]["labels"]


def stack_urls(overlay: str) -> list[str]:
    return [MLFLOW_URI] + ([DEV_S3_ENDPOINT] if overlay == "dev" else [])


@pytest.mark.parametrize("overlay", rendered.OVERLAYS)
def test_every_service_url_in_a_pod_env_is_reachable(overlay: str) -> None:
    """Serving -> MLflow, MLflow -> MinIO (dev), ...: every http URL a container's env names."""
    objects = list(rendered.render(overlay))
    configmaps = rendered.configmaps(overlay)
    checked = []
    for client in rendered_workloads(objects):
        for container in rendered.pod_spec(client)["containers"]:
            for name, value in podsim.container_env(container, configmaps).items():
                if not re.match(r"https?://", value) or urlsplit(value).hostname in {"localhost", "127.0.0.1"}:
                    continue
                reasons = reach(objects, namespace_of(client), template_labels(client), value)
                assert reasons == [], f"{client['kind']}/{client['metadata']['name']} {name}={value}: {reasons}"
                checked.append((client["metadata"]["name"], value))
    assert any("mlflow" in url for _, url in checked), f"no pod talks to MLflow? {checked}"
    if overlay == "dev":
        assert ("mlflow", "http://minio:9000") in checked


@pytest.mark.parametrize("overlay", rendered.OVERLAYS)
def test_zenml_step_pods_reach_the_stack_services(overlay: str) -> None:
    objects = list(rendered.render(overlay))
    for url in stack_urls(overlay):
        assert reach(objects, NAMESPACE, step_pod_labels(), url) == [], url
    assert mlflow_host_allowed(objects, MLFLOW_URI)


@pytest.mark.parametrize("overlay", rendered.OVERLAYS)
def test_kubeflow_step_pods_reach_the_stack_services_with_the_component(overlay: str, tmp_path: Path) -> None:
    plain = list(rendered.render(overlay))
    # Without k8s/components/kubeflow-access the policies keep KFP's pods out.
    assert reach(plain, KFP_NAMESPACE, {}, MLFLOW_URI), "MLflow admits other namespaces without the component"
    objects = render_with_component(overlay, "kubeflow-access", tmp_path)
    for url in stack_urls(overlay):
        assert reach(objects, KFP_NAMESPACE, {}, url) == [], url
    assert mlflow_host_allowed(objects, MLFLOW_URI)


def test_short_service_names_do_not_resolve_from_other_namespaces() -> None:
    objects = list(rendered.render("prod"))
    assert reach(objects, NAMESPACE, {}, "http://mlflow:5000") == []
    assert reach(objects, KFP_NAMESPACE, {}, "http://mlflow:5000")[0].startswith("mlflow from namespace kubeflow")
    assert urlsplit(MLFLOW_URI).hostname.endswith(".svc.cluster.local"), (
        "the step pods' tracking URI must resolve from every namespace the steps run in"
    )


def test_minio_bucket_job_reaches_minio() -> None:
    objects = list(rendered.render("dev"))
    job = next(o for o in objects if o["kind"] == "Job" and o["metadata"]["name"] == "minio-create-buckets")
    (container,) = rendered.pod_spec(job)["containers"]
    (host,) = set(re.findall(r"@([a-z0-9.-]+:\d+)", " ".join(container["args"])))
    assert reach(objects, namespace_of(job), template_labels(job), f"http://{host}") == []
