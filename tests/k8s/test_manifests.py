"""Offline checks of the Kubernetes manifests under ``k8s/``.

Every overlay is rendered with ``kubectl kustomize`` (no cluster, no network)
and the rendered objects are checked:

* built-in API objects: strict OpenAPI schema validation with
  ``kubernetes_validate`` for each version in ``K8S_VERSIONS``;
* custom resources (Karpenter ``NodePool`` / ``EC2NodeClass``): no schema is
  available offline, so they are reported as *not schema-checked* and only
  their structure is asserted;
* security policy for every pod template (non-root, no privilege escalation,
  no privileged containers, dropped capabilities, read-only root filesystem,
  CPU/memory requests and limits, pinned images);
* no Secret values in the rendered output, credentials only by reference;
* platform invariants (GPU taint, GPU quota, default-deny NetworkPolicy, RBAC
  scope, service wiring, dev/prod differences).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

kubernetes_validate = pytest.importorskip(
    "kubernetes_validate",
    reason="kubernetes-validate is not installed (pip install kubernetes-validate)",
)

REPO_ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = REPO_ROOT / "k8s"
OVERLAYS = ("dev", "prod")
K8S_VERSIONS = ("1.30.0", "1.33.0")
NAMESPACE = "drugslm"
KUBECTL = shutil.which("kubectl")

if KUBECTL is None:
    pytest.skip(
        "kubectl not found on PATH: the kustomize overlays under k8s/overlays "
        "cannot be rendered (install kubectl >= 1.27, it bundles kustomize)",
        allow_module_level=True,
    )

# Kinds whose objects are cluster-scoped (must not carry a namespace).
CLUSTER_SCOPED_KINDS = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "PriorityClass",
    "StorageClass",
    "NodePool",
    "EC2NodeClass",
}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"}
CREDENTIAL_ENV_NAME = re.compile(r"PASSWORD|SECRET|KEY|TOKEN|CREDENTIAL", re.IGNORECASE)
# Things that must never appear as literal values in the rendered manifests.
CREDENTIAL_VALUE_PATTERNS = {
    "URL with embedded password": re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@", re.I),
    "AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "private key block": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "long hex/base64 token": re.compile(r"\b[A-Za-z0-9+/=_-]{40,}\b"),
    "default MinIO credentials": re.compile(r"\bminioadmin\b"),
}


# --------------------------------------------------------------------------
# Rendering (once per overlay, at collection time)
# --------------------------------------------------------------------------


def _render(overlay: str) -> tuple[list[dict[str, Any]], str]:
    proc = subprocess.run(
        [KUBECTL, "kustomize", str(K8S_DIR / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        return [], proc.stderr.strip() or f"kubectl kustomize exited {proc.returncode}"
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc], ""


RENDERED: dict[str, tuple[list[dict[str, Any]], str]] = {o: _render(o) for o in OVERLAYS}


def objects(overlay: str) -> list[dict[str, Any]]:
    return RENDERED[overlay][0]


def obj_id(obj: dict[str, Any]) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def api_group(obj: dict[str, Any]) -> str:
    api_version = obj.get("apiVersion", "")
    return api_version.rpartition("/")[0] if "/" in api_version else ""


def is_builtin(obj: dict[str, Any]) -> bool:
    """Core/built-in API groups have schemas in kubernetes-validate."""
    group = api_group(obj)
    return group == "" or "." not in group or group.endswith(".k8s.io")


def find(overlay: str, kind: str, name: str) -> dict[str, Any]:
    for obj in objects(overlay):
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    raise AssertionError(f"{overlay}: {kind}/{name} not found in rendered output")


def all_of(overlay: str, kind: str) -> list[dict[str, Any]]:
    return [o for o in objects(overlay) if o["kind"] == kind]


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        return spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec")
    if kind in WORKLOAD_KINDS:
        return spec.get("template", {}).get("spec")
    return None


def pod_template_labels(obj: dict[str, Any]) -> dict[str, str]:
    if obj["kind"] == "Pod":
        return obj["metadata"].get("labels", {})
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["metadata"].get("labels", {})
    return obj["spec"]["template"]["metadata"].get("labels", {})


def containers_of(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(key) or []


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env") or []}


def workload(obj_kind: str, name: str, overlay: str) -> tuple[dict[str, Any], dict[str, Any]]:
    obj = find(overlay, obj_kind, name)
    return obj, pod_spec(obj)


# --------------------------------------------------------------------------
# Parameter sets (one test id per object / container / check)
# --------------------------------------------------------------------------

BUILTIN_PARAMS = [
    pytest.param(overlay, obj, version, id=f"{version}-{overlay}-{obj_id(obj)}")
    for overlay in OVERLAYS
    for obj in objects(overlay)
    if is_builtin(obj)
    for version in K8S_VERSIONS
]
CUSTOM_PARAMS = [
    pytest.param(overlay, obj, id=f"{overlay}-{obj_id(obj)}")
    for overlay in OVERLAYS
    for obj in objects(overlay)
    if not is_builtin(obj)
]
OBJECT_PARAMS = [
    pytest.param(overlay, obj, id=f"{overlay}-{obj_id(obj)}")
    for overlay in OVERLAYS
    for obj in objects(overlay)
]
POD_PARAMS = [
    pytest.param(overlay, obj, pod_spec(obj), id=f"{overlay}-{obj_id(obj)}")
    for overlay in OVERLAYS
    for obj in objects(overlay)
    if pod_spec(obj) is not None
]
CONTAINER_PARAMS = [
    pytest.param(overlay, obj, spec, c, id=f"{overlay}-{obj_id(obj)}-{c['name']}")
    for overlay in OVERLAYS
    for obj in objects(overlay)
    if (spec := pod_spec(obj)) is not None
    for c in containers_of(spec)
]


# --------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders(overlay: str) -> None:
    objs, error = RENDERED[overlay]
    assert not error, f"kubectl kustomize k8s/overlays/{overlay} failed:\n{error}"
    assert objs, f"k8s/overlays/{overlay} rendered no objects"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_object_names_unique(overlay: str) -> None:
    seen: set[tuple[str, str, str | None]] = set()
    for obj in objects(overlay):
        key = (obj["kind"], obj["metadata"]["name"], obj["metadata"].get("namespace"))
        assert key not in seen, f"duplicate object {key}"
        seen.add(key)


# --------------------------------------------------------------------------
# Schema validation
# --------------------------------------------------------------------------


@pytest.mark.parametrize(("overlay", "obj", "version"), BUILTIN_PARAMS)
def test_schema_valid(overlay: str, obj: dict[str, Any], version: str, k8s_stats: dict) -> None:
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.SchemaNotFoundError as exc:  # built-in kinds must have one
        pytest.fail(f"{overlay}: no schema for built-in {obj['apiVersion']} {obj['kind']}: {exc}")
    except kubernetes_validate.ValidationError as exc:
        path = "/".join(str(p) for p in exc.path)
        pytest.fail(f"{overlay}: {obj_id(obj)} invalid for Kubernetes {version} at '{path}': {exc.message}")
    k8s_stats["validated"][version] += 1


@pytest.mark.parametrize(("overlay", "obj"), CUSTOM_PARAMS)
def test_custom_resource_structure(overlay: str, obj: dict[str, Any], k8s_stats: dict) -> None:
    label = f"{overlay}:{obj['apiVersion']}/{obj_id(obj)}"
    k8s_stats["not_schema_checked"].add(label)
    print(f"NOT SCHEMA-CHECKED (custom resource, no offline schema): {label}")
    # The schemas really are unavailable (otherwise this should be validated).
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        kubernetes_validate.validate(obj, K8S_VERSIONS[-1], strict=True)
    group, _, version = obj["apiVersion"].rpartition("/")
    assert group and "." in group, f"custom resource needs a qualified API group: {obj['apiVersion']}"
    assert re.fullmatch(r"v\d+((alpha|beta)\d+)?", version), obj["apiVersion"]
    assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", obj["kind"])
    name = obj["metadata"]["name"]
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= 63
    assert isinstance(obj.get("spec"), dict) and obj["spec"], "spec must be a non-empty mapping"
    assert "status" not in obj


@pytest.mark.parametrize(("overlay", "obj"), OBJECT_PARAMS)
def test_namespace_scoping(overlay: str, obj: dict[str, Any]) -> None:
    namespace = obj["metadata"].get("namespace")
    if obj["kind"] in CLUSTER_SCOPED_KINDS:
        assert namespace is None, f"cluster-scoped {obj_id(obj)} must not set a namespace"
    else:
        assert namespace == NAMESPACE, f"{obj_id(obj)} is in namespace {namespace!r}"


# --------------------------------------------------------------------------
# Pod security (every container of every pod template)
# --------------------------------------------------------------------------


def _effective(container: dict[str, Any], spec: dict[str, Any], field: str) -> Any:
    csc = container.get("securityContext") or {}
    if field in csc:
        return csc[field]
    return (spec.get("securityContext") or {}).get(field)


@pytest.mark.parametrize(("overlay", "obj", "spec", "container"), CONTAINER_PARAMS)
def test_run_as_non_root(overlay, obj, spec, container) -> None:
    assert _effective(container, spec, "runAsNonRoot") is True, "runAsNonRoot must be true"
    assert _effective(container, spec, "runAsUser") != 0, "runAsUser must not be 0"


@pytest.mark.parametrize(("overlay", "obj", "spec", "container"), CONTAINER_PARAMS)
def test_not_privileged(overlay, obj, spec, container) -> None:
    assert (container.get("securityContext") or {}).get("privileged") is not True


@pytest.mark.parametrize(("overlay", "obj", "spec", "container"), CONTAINER_PARAMS)
def test_no_privilege_escalation(overlay, obj, spec, container) -> None:
    assert (container.get("securityContext") or {}).get("allowPrivilegeEscalation") is False, (
        "allowPrivilegeEscalation must be explicitly false"
    )


@pytest.mark.parametrize(("overlay", "obj", "spec", "container"), CONTAINER_PARAMS)
def test_capabilities_dropped(overlay, obj, spec, container) -> None:
    caps = (container.get("securityContext") or {}).get("capabilities") or {}
    assert "ALL" in (caps.get("drop") or []), "capabilities.drop must contain ALL"
    assert not caps.get("add"), f"no capabilities may be added: {caps.get('add')}"


@pytest.mark.parametrize(("overlay", "obj", "spec", "container"), CONTAINER_PARAMS)
def test_read_only_root_filesystem(overlay, obj, spec, container) -> None:
    assert (container.get("securityContext") or {}).get("readOnlyRootFilesystem") is True


@pytest.mark.parametrize(("overlay", "obj", "spec", "container"), CONTAINER_PARAMS)
def test_requests_and_limits(overlay, obj, spec, container) -> None:
    resources = container.get("resources") or {}
    for section in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            assert resource in (resources.get(section) or {}), f"missing resources.{section}.{resource}"


def _image_is_pinned(image: str) -> bool:
    if re.search(r"@sha256:[0-9a-f]{64}$", image):
        return True
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return False
    tag = last.rsplit(":", 1)[1]
    return bool(tag) and tag != "latest"


@pytest.mark.parametrize(("overlay", "obj", "spec", "container"), CONTAINER_PARAMS)
def test_image_pinned(overlay, obj, spec, container) -> None:
    image = container.get("image", "")
    assert _image_is_pinned(image), f"image {image!r} must have a non-latest tag or a digest"


@pytest.mark.parametrize(
    ("image", "pinned"),
    [
        ("ghcr.io/drugslm/drugslm:0.1.0", True),
        ("localhost:5000/drugslm:0.1.0", True),
        ("repo/img@sha256:" + "a" * 64, True),
        ("repo/img:latest", False),
        ("repo/img", False),
        ("localhost:5000/img", False),
    ],
)
def test_image_pin_rule(image: str, pinned: bool) -> None:
    assert _image_is_pinned(image) is pinned


@pytest.mark.parametrize(("overlay", "obj", "spec"), POD_PARAMS)
def test_pod_isolation(overlay, obj, spec) -> None:
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        assert spec.get(field) is not True, f"{field} must not be enabled"
    assert not any("hostPath" in v for v in spec.get("volumes") or []), "hostPath volumes are not allowed"
    seccomp = (spec.get("securityContext") or {}).get("seccompProfile", {}).get("type")
    assert seccomp == "RuntimeDefault", "pod seccompProfile must be RuntimeDefault"
    assert spec.get("automountServiceAccountToken") is False, (
        "workloads do not use the Kubernetes API: automountServiceAccountToken must be false"
    )


# --------------------------------------------------------------------------
# Secrets and credentials
# --------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_secret_values_rendered(overlay: str) -> None:
    offenders = [
        obj_id(o) for o in all_of(overlay, "Secret") if o.get("data") or o.get("stringData")
    ]
    assert not offenders, f"Secrets with values must not be committed: {offenders}"


@pytest.mark.parametrize(("overlay", "obj", "spec", "container"), CONTAINER_PARAMS)
def test_credential_env_uses_secret_ref(overlay, obj, spec, container) -> None:
    secret_mounts = [
        m["mountPath"] for m in container.get("volumeMounts") or []
        if "secret" in {v["name"]: v for v in spec.get("volumes") or []}.get(m["name"], {})
    ]
    for name, entry in env_of(container).items():
        if CREDENTIAL_ENV_NAME.search(name) and name.endswith("_FILE"):
            # a path to the credential, which must be a file of a mounted Secret
            assert any(entry.get("value", "").startswith(f"{mount}/") for mount in secret_mounts), (
                f"env {name}={entry.get('value')!r} must point into a mounted Secret volume {secret_mounts}"
            )
        elif CREDENTIAL_ENV_NAME.search(name):
            assert "value" not in entry, f"env {name} has a literal value; use valueFrom.secretKeyRef"
            assert "secretKeyRef" in (entry.get("valueFrom") or {}), (
                f"env {name} must come from valueFrom.secretKeyRef"
            )


def _literal_strings(overlay: str) -> Iterator[tuple[str, str]]:
    for obj in objects(overlay):
        if obj["kind"] == "ConfigMap":
            for key, value in (obj.get("data") or {}).items():
                yield f"{obj_id(obj)} data.{key}", str(value)
        spec = pod_spec(obj)
        if spec is None:
            continue
        for c in containers_of(spec):
            where = f"{obj_id(obj)}/{c['name']}"
            for entry in c.get("env") or []:
                if "value" in entry:
                    yield f"{where} env {entry['name']}", str(entry["value"])
            for i, arg in enumerate((c.get("command") or []) + (c.get("args") or [])):
                yield f"{where} command/args[{i}]", str(arg)


@pytest.mark.parametrize("pattern_name", sorted(CREDENTIAL_VALUE_PATTERNS))
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_plaintext_credentials(overlay: str, pattern_name: str) -> None:
    pattern = CREDENTIAL_VALUE_PATTERNS[pattern_name]
    hits = [f"{where}: {value!r}" for where, value in _literal_strings(overlay) if pattern.search(value)]
    assert not hits, f"looks like a {pattern_name}:\n" + "\n".join(hits)


def _secret_refs(overlay: str) -> set[tuple[str, str]]:
    refs = set()
    for obj in objects(overlay):
        spec = pod_spec(obj)
        for c in containers_of(spec or {}):
            for entry in c.get("env") or []:
                ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    refs.add((ref["name"], ref["key"]))
        for volume in (spec or {}).get("volumes") or []:
            secret = volume.get("secret")
            if secret:
                assert secret.get("items"), f"{obj_id(obj)}: Secret volume {volume['name']} must list its keys (items)"
                refs.update((secret["secretName"], item["key"]) for item in secret["items"])
    return refs


def _example_secret_keys() -> set[tuple[str, str]]:
    current = None
    keys = set()
    for line in (K8S_DIR / "secrets.example.env").read_text().splitlines():
        header = re.match(r"#\s*---\s*secret:\s*([a-z0-9-]+)\s*---", line)
        if header:
            current = header.group(1)
        elif re.match(r"[A-Z_][A-Z0-9_]*=", line):
            assert current, f"key outside a '# --- secret: NAME ---' section: {line}"
            key, _, value = line.partition("=")
            assert "CHANGE_ME" in value, f"{key} in secrets.example.env must be a placeholder"
            keys.add((current, key))
    return keys


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_example_covers_references(overlay: str) -> None:
    text = (K8S_DIR / "secrets.example.env").read_text()
    assert "kubectl" in text and "create secret generic" in text
    missing = _secret_refs(overlay) - _example_secret_keys()
    assert not missing, f"secretKeyRefs not documented in k8s/secrets.example.env: {sorted(missing)}"


def test_no_secret_generators() -> None:
    for path in K8S_DIR.rglob("kustomization.yaml"):
        doc = yaml.safe_load(path.read_text()) or {}
        assert "secretGenerator" not in doc, f"{path.relative_to(REPO_ROOT)} must not generate Secrets"


# --------------------------------------------------------------------------
# GPU pool, quota, network policy, RBAC
# --------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gpu_nodepool(overlay: str) -> None:
    pools = all_of(overlay, "NodePool")
    assert len(pools) == 1, "exactly one Karpenter NodePool expected"
    pool = pools[0]
    assert pool["apiVersion"] == "karpenter.sh/v1"
    template = pool["spec"]["template"]
    assert {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"} in template["spec"]["taints"]
    assert template["metadata"]["labels"].get("drugslm.io/pool") == "gpu"
    families = [
        r for r in template["spec"]["requirements"] if r["key"] == "karpenter.k8s.aws/instance-family"
    ]
    assert families and families[0]["operator"] == "In"
    assert all(re.fullmatch(r"(g|p)\d+[a-z]*", f) for f in families[0]["values"]), families
    assert "nvidia.com/gpu" in pool["spec"].get("limits", {})
    ref = template["spec"]["nodeClassRef"]
    node_class = find(overlay, ref["kind"], ref["name"])
    assert node_class["apiVersion"] == f"{ref['group']}/v1"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gpu_quota(overlay: str) -> None:
    quotas = [q for q in all_of(overlay, "ResourceQuota") if "requests.nvidia.com/gpu" in q["spec"]["hard"]]
    assert quotas, "a ResourceQuota must limit requests.nvidia.com/gpu"
    assert int(quotas[0]["spec"]["hard"]["requests.nvidia.com/gpu"]) >= 1


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_default_deny_ingress(overlay: str) -> None:
    assert any(
        np["spec"].get("podSelector") == {}
        and "Ingress" in np["spec"].get("policyTypes", [])
        and not np["spec"].get("ingress")
        for np in all_of(overlay, "NetworkPolicy")
    ), "a NetworkPolicy selecting all pods with no ingress rules (default deny) is required"


def _ingress_rules_for(overlay: str, app: str) -> list[dict[str, Any]]:
    rules = []
    for np in all_of(overlay, "NetworkPolicy"):
        selector = np["spec"].get("podSelector", {}).get("matchLabels", {})
        if selector.get("app.kubernetes.io/name") == app:
            rules.extend(np["spec"].get("ingress") or [])
    return rules


@pytest.mark.parametrize(
    ("app", "port", "scope"),
    [
        ("drugslm-serving", 8000, "anywhere"),
        ("mlflow", 5000, "namespace"),
        ("zenml-server", 8080, "namespace"),
        ("minio", 9000, "namespace"),
    ],
)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policy_allows(overlay: str, app: str, port: int, scope: str) -> None:
    if app == "minio" and not all_of(overlay, "StatefulSet"):
        pytest.skip(f"no MinIO in the {overlay} overlay")
    rules = _ingress_rules_for(overlay, app)
    assert rules, f"no NetworkPolicy opens ingress to {app}"
    for rule in rules:
        assert port in [p["port"] for p in rule.get("ports", [])], rule
        if scope == "anywhere":
            assert not rule.get("from"), "serving must be reachable from anywhere"
        else:
            assert rule.get("from") == [{"podSelector": {}}], (
                f"{app} must only be reachable from pods of the namespace: {rule.get('from')}"
            )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_orchestrator_rbac_least_privilege(overlay: str) -> None:
    assert not all_of(overlay, "ClusterRole") and not all_of(overlay, "ClusterRoleBinding")
    find(overlay, "ServiceAccount", "zenml-orchestrator")
    role = find(overlay, "Role", "zenml-orchestrator")
    allowed = {
        "": {"pods", "pods/log", "secrets", "configmaps"},
        "batch": {"jobs", "cronjobs"},
    }
    covered = set()
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"]
        assert "escalate" not in rule["verbs"] and "bind" not in rule["verbs"] and "impersonate" not in rule["verbs"]
        for group in rule["apiGroups"]:
            assert group in allowed, f"unexpected API group {group!r}"
            assert set(rule["resources"]) <= allowed[group], rule
            covered |= {(group, r) for r in rule["resources"]}
        if "secrets" in rule["resources"]:
            assert not {"list", "watch"} & set(rule["verbs"]), "no list/watch on secrets"
    for needed in [("", "pods"), ("", "pods/log"), ("batch", "jobs"), ("batch", "cronjobs"), ("", "secrets")]:
        assert needed in covered, f"orchestrator needs {needed}"
    binding = find(overlay, "RoleBinding", "zenml-orchestrator")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "zenml-orchestrator"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "zenml-orchestrator", "namespace": NAMESPACE}]


# --------------------------------------------------------------------------
# Service contracts and wiring
# --------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_select_pods(overlay: str) -> None:
    templates = [pod_template_labels(o) for o in objects(overlay) if pod_spec(o) is not None]
    for svc in all_of(overlay, "Service"):
        selector = svc["spec"]["selector"]
        assert any(selector.items() <= labels.items() for labels in templates), (
            f"Service {svc['metadata']['name']} selects no pod template"
        )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_serving_contract(overlay: str) -> None:
    _, spec = workload("Deployment", "drugslm-serving", overlay)
    (api,) = spec["containers"]
    assert api["image"] == "ghcr.io/drugslm/drugslm:0.1.0"
    assert api["command"] == [
        "drugslm", "serve", "--host", "0.0.0.0", "--port", "8000", "--model-alias", "champion",
        "--config", "configs/k8s-gpu.yaml",
    ]
    assert env_of(api)["MLFLOW_TRACKING_URI"]["value"] == "http://mlflow:5000"
    assert [p["containerPort"] for p in api["ports"]] == [8000]
    # ready once a model is loaded; alive while the process answers
    assert {probe: api[probe]["httpGet"]["path"] for probe in ("startupProbe", "readinessProbe", "livenessProbe")} == {
        "startupProbe": "/readyz", "readinessProbe": "/readyz", "livenessProbe": "/healthz",
    }
    # the bearer keys come from the Secret as a file, never as an env value or in the manifest
    assert env_of(api)["DRUGSLM_API_KEYS_FILE"]["value"] == "/secrets/api-keys/DRUGSLM_API_KEYS"
    assert "DRUGSLM_API_KEYS" not in env_of(api)
    keys_volume = {v["name"]: v for v in spec["volumes"]}["api-keys"]
    assert keys_volume["secret"]["secretName"] == "drugslm-api-keys"
    assert {"name": "api-keys", "mountPath": "/secrets/api-keys", "readOnly": True} in api["volumeMounts"]
    svc = find(overlay, "Service", "drugslm-serving")
    assert svc["spec"]["ports"][0]["port"] == 8000
    hpa = find(overlay, "HorizontalPodAutoscaler", "drugslm-serving")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "drugslm-serving"}
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    pdb = find(overlay, "PodDisruptionBudget", "drugslm-serving")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_template_labels(
        find(overlay, "Deployment", "drugslm-serving")
    ).items()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_mlflow_contract(overlay: str) -> None:
    _, spec = workload("Deployment", "mlflow", overlay)
    (mlflow,) = spec["containers"]
    assert mlflow["image"].startswith("ghcr.io/mlflow/mlflow:v3.17.2")
    # The credentials are Secret volume files read by the shell; only non-secret
    # options are in the arguments (tests/k8s/test_pod_behaviour.py runs this command).
    assert mlflow["command"] == ["/bin/sh", "-c"]
    (script,) = mlflow["args"]
    argv = script.rsplit("exec ", 1)[1].split()
    assert argv[:2] == ["mlflow", "server"]
    opts = dict(zip(argv[2::2], argv[3::2]))
    assert "--backend-store-uri" not in opts and "DB_URL" not in script.rsplit("exec ", 1)[1]
    assert opts["--workers"] == "1" and opts["--host"] == "0.0.0.0"
    assert 'MLFLOW_BACKEND_STORE_URI="$(cat /secrets/db/DB_URL)"' in script
    mounts = {m["name"]: m["mountPath"] for m in mlflow["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["mlflow-db"]["secret"]["secretName"] == "mlflow-db" and mounts["mlflow-db"] == "/secrets/db"
    assert volumes["mlflow-s3"]["secret"]["secretName"] == "mlflow-s3" and mounts["mlflow-s3"] == "/secrets/s3"
    env = env_of(mlflow)
    assert not any("secretKeyRef" in (e.get("valueFrom") or {}) for e in env.values())
    ref = env["MLFLOW_ARTIFACTS_DESTINATION"]["valueFrom"]["configMapKeyRef"]
    destination = find(overlay, "ConfigMap", ref["name"])["data"][ref["key"]]
    assert destination.startswith("s3://"), destination


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_zenml_server_contract(overlay: str) -> None:
    _, spec = workload("Deployment", "zenml-server", overlay)
    (server,) = spec["containers"]
    assert server["image"] == "zenmldocker/zenml-server:0.98.0"
    assert env_of(server)["ZENML_STORE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "zenml-server"
    # Migrations run before the server answers: liveness must wait for a startupProbe
    # that allows minutes, not kill the pod after ~105 s.
    startup = server["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600
    liveness = server["livenessProbe"]
    assert liveness.get("initialDelaySeconds", 0) + liveness["periodSeconds"] * liveness["failureThreshold"] < 600
    svc = find(overlay, "Service", "zenml")
    assert svc["spec"]["ports"][0]["port"] == 8080


# --------------------------------------------------------------------------
# dev vs prod
# --------------------------------------------------------------------------


def _quantity(value: str) -> float:
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "": 1}
    number, unit = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(value)).groups()
    return float(number) * units[unit]


def test_minio_only_in_dev() -> None:
    (minio,) = all_of("dev", "StatefulSet")
    assert minio["metadata"]["name"] == "minio"
    assert minio["spec"]["volumeClaimTemplates"], "MinIO needs a PersistentVolumeClaim template"
    assert find("dev", "Service", "minio")
    assert find("dev", "ConfigMap", "drugslm-config")["data"]["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert not any(o["metadata"]["name"].startswith("minio") for o in objects("prod"))
    assert "MLFLOW_S3_ENDPOINT_URL" not in find("prod", "ConfigMap", "drugslm-config")["data"]


def test_prod_scales_beyond_dev() -> None:
    dev_hpa = find("dev", "HorizontalPodAutoscaler", "drugslm-serving")["spec"]
    prod_hpa = find("prod", "HorizontalPodAutoscaler", "drugslm-serving")["spec"]
    assert prod_hpa["minReplicas"] > dev_hpa["minReplicas"]
    assert prod_hpa["maxReplicas"] > dev_hpa["maxReplicas"]
    assert (
        find("prod", "Deployment", "drugslm-serving")["spec"]["replicas"]
        > find("dev", "Deployment", "drugslm-serving")["spec"]["replicas"]
    )
    for name in ("drugslm-serving", "mlflow", "zenml-server"):
        dev = find("dev", "Deployment", name)["spec"]["template"]["spec"]["containers"][0]["resources"]
        prod = find("prod", "Deployment", name)["spec"]["template"]["spec"]["containers"][0]["resources"]
        for section in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                assert _quantity(prod[section][resource]) > _quantity(dev[section][resource]), (
                    f"{name} {section}.{resource}: prod must be larger than dev"
                )
    gpu = {
        o: int(find(o, "ResourceQuota", "gpu-quota")["spec"]["hard"]["requests.nvidia.com/gpu"])
        for o in OVERLAYS
    }
    assert gpu["prod"] > gpu["dev"]
