"""Offline checks of production serving on Kubernetes (k8s/components/serving-vllm, prod overlay).

* the vLLM Deployment's contract: LoRA under a versioned name from the release ConfigMap,
  never runtime-reloaded; vLLM bound to 127.0.0.1 so only the front reaches it; base weights
  from the read-only cache volume; the adapter fetched by an init container; readiness on
  vLLM's /health through the front; on the GPU pool; HPA on queue depth;
* network exposure: the Service and NetworkPolicy open the front (8000) and the metrics port
  (9090, monitoring namespace only), never vLLM's own port;
* the front for real: the rendered nginx.conf and key-map script run with the system nginx in
  front of a loopback HTTP backend standing in for vLLM (vLLM needs a GPU): 401 without a key,
  404 for /metrics, /tokenize and the LoRA admin routes, the key never forwarded;
* the schemas: every object of the component is validated strictly for Kubernetes 1.30 and 1.33
  by tests/k8s/test_manifests.py (it renders the prod overlay); here the release ConfigMap and the
  Deployment are validated again after a version's kustomization replaces the ConfigMap
  (tests/integration/test_deploy_production.py). No custom resources are used (plain
  Deployment + HPA on a custom metric: no KServe CRD to check).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.servers import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
KUBECTL = shutil.which("kubectl")
NGINX = shutil.which("nginx") or (shutil.which("nginx", path="/usr/sbin:/sbin"))
K8S_VERSIONS = ("1.30.0", "1.33.0")

if KUBECTL is None:
    pytest.skip("kubectl not found on PATH: the prod overlay cannot be rendered", allow_module_level=True)


def _render(overlay: str) -> list[dict[str, Any]]:
    out = subprocess.run([KUBECTL, "kustomize", str(REPO_ROOT / "k8s" / "overlays" / overlay)],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


PROD = _render("prod")
DEV = _render("dev")


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"].startswith(name)]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


VLLM = find(PROD, "Deployment", "drugslm-vllm")
POD = VLLM["spec"]["template"]["spec"]
CONTAINERS = {c["name"]: c for c in POD["containers"]}
INIT = {c["name"]: c for c in POD["initContainers"]}


def _arg(container: dict[str, Any], flag: str) -> str:
    args = container["args"]
    return args[args.index(flag) + 1]


def test_vllm_only_in_prod_and_cpu_server_kept() -> None:
    assert not [o for o in DEV if o["metadata"]["name"].startswith("drugslm-vllm")]
    for objects in (PROD, DEV):
        find(objects, "Deployment", "drugslm-serving")  # our CPU server stays an option


def test_vllm_serves_the_adapter_under_the_versioned_name() -> None:
    vllm = CONTAINERS["vllm"]
    assert vllm["image"].startswith("vllm/vllm-openai:v")
    assert "--enable-lora" in vllm["args"]
    assert _arg(vllm, "--lora-modules") == "$(SERVED_MODEL_NAME)=/adapters/$(SERVED_MODEL_NAME)"
    assert _arg(vllm, "--model") == "$(BASE_MODEL_PATH)"
    env = {e["name"]: e.get("value") for e in vllm.get("env", [])}
    assert env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "False"  # no /v1/load_lora_adapter: one name, one set of weights
    assert env["HF_HUB_OFFLINE"] == "1"
    release = find(PROD, "ConfigMap", "drugslm-vllm-release")
    for container in (vllm, INIT["fetch-adapter"]):
        assert container["envFrom"] == [{"configMapRef": {"name": release["metadata"]["name"]}}]
    assert release["data"]["MODEL_VERSION"] == "none"  # until the deployment pipeline renders a version
    assert "MODEL_VERSION\" = none" in INIT["fetch-adapter"]["args"][0]


def test_vllm_is_reachable_only_through_the_front() -> None:
    vllm = CONTAINERS["vllm"]
    assert _arg(vllm, "--host") == "127.0.0.1" and _arg(vllm, "--port") == "8001"
    assert not vllm.get("ports")
    front = CONTAINERS["front"]
    assert {p["name"]: p["containerPort"] for p in front["ports"]} == {"http": 8000, "metrics": 9090}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert front[probe]["httpGet"] == {"path": "/health", "port": "http"}, probe
    service = find(PROD, "Service", "drugslm-vllm")
    assert {p["targetPort"] for p in service["spec"]["ports"]} == {"http", "metrics"}
    policies = [p for p in PROD if p["kind"] == "NetworkPolicy"
                and p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name") == "drugslm-vllm"]
    rules = [rule for policy in policies for rule in policy["spec"]["ingress"]]
    open_ports = {port["port"]: rule.get("from") for rule in rules for port in rule["ports"]}
    assert set(open_ports) == {8000, 9090}
    assert open_ports[8000] is None  # the API: from anywhere (the key is checked by the front)
    assert open_ports[9090] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]


def test_weights_and_adapter_volumes() -> None:
    volumes = {v["name"]: v for v in POD["volumes"]}
    assert volumes["base-models"]["persistentVolumeClaim"] == {"claimName": "drugslm-base-models", "readOnly": True}
    find(PROD, "PersistentVolumeClaim", "drugslm-base-models")
    mounts = {m["name"]: m for m in CONTAINERS["vllm"]["volumeMounts"]}
    assert mounts["base-models"]["readOnly"] and mounts["adapters"]["readOnly"]
    fetch = INIT["fetch-adapter"]
    assert 'aws s3 cp --recursive --only-show-errors "$ADAPTER_URI" "/adapters/$SERVED_MODEL_NAME/"' in fetch["args"][0]
    assert '"$BASE_MODEL_PATH/config.json"' in fetch["args"][0]  # the base the adapter names must be on the volume
    # credentials as Secret files read by the script, never env values
    assert not [e for e in fetch["env"] if "secretKeyRef" in e.get("valueFrom", {})]
    secret_volumes = {v["name"]: v["secret"]["secretName"] for v in POD["volumes"] if "secret" in v}
    fetch_secrets = {secret_volumes[m["name"]] for m in fetch["volumeMounts"] if m["name"] in secret_volumes}
    assert fetch_secrets == {"drugslm-serving-s3"}
    assert 'AWS_ACCESS_KEY_ID="$(cat /secrets/s3/AWS_ACCESS_KEY_ID)"' in fetch["args"][0]


def test_on_the_gpu_pool_within_the_quota() -> None:
    assert POD["nodeSelector"] == {"drugslm.io/pool": "gpu"}
    assert {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"} in POD["tolerations"]
    resources = CONTAINERS["vllm"]["resources"]
    assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"] == "1"
    hpa = find(PROD, "HorizontalPodAutoscaler", "drugslm-vllm")["spec"]
    quota = int(find(PROD, "ResourceQuota", "gpu-quota")["spec"]["hard"]["requests.nvidia.com/gpu"])
    assert hpa["maxReplicas"] < quota  # room left for the training step's GPU


def test_hpa_scales_on_queue_depth() -> None:
    hpa = find(PROD, "HorizontalPodAutoscaler", "drugslm-vllm")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "drugslm-vllm"}
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods"
    assert metric["pods"]["metric"]["name"] == "vllm_num_requests_waiting"
    assert metric["pods"]["target"]["type"] == "AverageValue"
    pdb = find(PROD, "PodDisruptionBudget", "drugslm-vllm")
    assert pdb["spec"]["selector"]["matchLabels"] == VLLM["spec"]["selector"]["matchLabels"]


def test_docs_give_the_adapter_rule_for_the_metric() -> None:
    docs = (REPO_ROOT / "docs" / "kubernetes.md").read_text()
    assert "## Serving" in docs
    assert "vllm:num_requests_waiting" in docs and "prometheus-adapter" in docs and "vllm_num_requests_waiting" in docs


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_component_objects_schema_valid(version: str) -> None:
    import kubernetes_validate

    names = ("drugslm-vllm", "drugslm-base-models", "allow-vllm-front")
    objects = [o for o in PROD if o["metadata"]["name"].startswith(names)]
    assert {o["kind"] for o in objects} >= {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
                                             "ConfigMap", "NetworkPolicy", "PersistentVolumeClaim", "ServiceAccount"}
    for obj in objects:
        kubernetes_validate.validate(obj, version, strict=True)


# -- the authenticating front, with the real nginx ----------------------------------------------



class _Backend(BaseHTTPRequestHandler):
    """Answers 200 to everything and remembers what reached it (a stand-in for vLLM's server)."""

    seen: list[tuple[str, str, str | None]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        _Backend.seen.append((self.command, self.path, self.headers.get("Authorization")))
        body = json.dumps({"object": "list", "data": [{"id": "drugslm-v7", "object": "model", "created": 0,
                                                       "owned_by": "vllm"}]}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


def _key_map(tmp_path: Path, keys: str) -> subprocess.CompletedProcess:
    # the Secret drugslm-api-keys as the kubelet mounts it: its key DRUGSLM_API_KEYS as a file
    (tmp_path / "api-keys").mkdir(exist_ok=True)
    (tmp_path / "api-keys" / "DRUGSLM_API_KEYS").write_text(keys)
    script = (INIT["front-keys"]["args"][0].replace("/run/front", str(tmp_path))
              .replace("/secrets/api-keys", str(tmp_path / "api-keys")))
    assert str(tmp_path / "api-keys") in script
    return subprocess.run(["sh", "-c", script], env={"PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=30)


def test_key_map_script_refuses_bad_or_missing_keys(tmp_path: Path) -> None:
    assert _key_map(tmp_path, "").returncode == 1
    bad = _key_map(tmp_path, 'good,ba"d')
    assert bad.returncode == 1 and "DRUGSLM_API_KEYS" in bad.stderr
    ok = _key_map(tmp_path, "k1, k2")
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "api-keys.map").read_text() == '"Bearer k1" 1;\n"Bearer k2" 1;\n'


@pytest.fixture
def front(tmp_path: Path):  # type: ignore[no-untyped-def]
    if NGINX is None:
        pytest.skip("nginx not installed (apt-get install nginx-light): the front's config cannot be run")
    assert _key_map(tmp_path, "key-one,key-two").returncode == 0
    backend = ThreadingHTTPServer(("127.0.0.1", 0), _Backend)
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    _Backend.seen = []
    api, metrics = free_port(), free_port()
    conf = find(PROD, "ConfigMap", "drugslm-vllm-front")["data"]["nginx.conf"]
    conf = (conf.replace(" /tmp/", f" {tmp_path}/").replace("/run/front/", f"{tmp_path}/")
            .replace("listen 8000;", f"listen 127.0.0.1:{api};").replace("listen 9090;", f"listen 127.0.0.1:{metrics};")
            .replace("server 127.0.0.1:8001;", f"server 127.0.0.1:{backend.server_port};"))
    assert str(backend.server_port) in conf and f"{tmp_path}/api-keys.map" in conf
    (tmp_path / "nginx.conf").write_text(conf)
    log = (tmp_path / "nginx.log").open("w")
    process = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-g", "daemon off;"],
                               stdout=log, stderr=log)
    try:
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{api}/health", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, (tmp_path / "nginx.log").read_text()
                time.sleep(0.1)
        yield f"http://127.0.0.1:{api}", f"http://127.0.0.1:{metrics}"
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()
        backend.shutdown()


def test_front_requires_the_key_and_never_forwards_it(front: tuple[str, str]) -> None:
    api, _ = front
    assert httpx.get(f"{api}/health").status_code == 200  # readiness: no key
    denied = httpx.get(f"{api}/v1/models")
    assert denied.status_code == 401 and denied.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(f"{api}/v1/models", headers={"Authorization": "Bearer key-three"}).status_code == 401
    assert httpx.post(f"{api}/v1/chat/completions", json={"messages": []}).status_code == 401
    assert all(path == "/health" for _, path, _ in _Backend.seen)  # nothing unauthenticated got through
    ok = httpx.post(f"{api}/v1/chat/completions", json={"messages": []}, headers={"Authorization": "Bearer key-two"})
    assert ok.status_code == 200
    assert ("POST", "/v1/chat/completions", None) in _Backend.seen  # the key stays at the front


def test_front_hides_metrics_tokenize_and_admin_routes(front: tuple[str, str]) -> None:
    api, metrics = front
    key = {"Authorization": "Bearer key-one"}
    for path in ("/metrics", "/tokenize", "/detokenize", "/v1/load_lora_adapter", "/v1/unload_lora_adapter",
                 "/docs", "/openapi.json", "/version", "/v1/models/../../metrics"):
        assert httpx.get(f"{api}{path}", headers=key).status_code in (400, 404), path
        assert httpx.post(f"{api}{path}", headers=key, json={}).status_code in (400, 404), path
    assert not [path for _, path, _ in _Backend.seen if path != "/health"]
    assert httpx.get(f"{metrics}/metrics").status_code == 200  # the monitoring port: /metrics only
    assert httpx.get(f"{metrics}/tokenize").status_code == 404
    assert [path for _, path, _ in _Backend.seen if path != "/health"] == ["/metrics"]


def test_openai_client_through_the_front(front: tuple[str, str]) -> None:
    import openai

    api, _ = front
    models = openai.OpenAI(base_url=f"{api}/v1", api_key="key-one", max_retries=0).models.list()
    assert [m.id for m in models.data] == ["drugslm-v7"]
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{api}/v1", api_key="wrong", max_retries=0).models.list()


def test_nginx_conf_routes_are_the_documented_ones() -> None:
    conf = find(PROD, "ConfigMap", "drugslm-vllm-front")["data"]["nginx.conf"]
    blocks = re.split(r"\n\s*location ", conf)[1:]
    proxied = [block.split("{", 1)[0].strip() for block in blocks if "proxy_pass" in block.split("\n    }", 1)[0]]
    assert proxied == ["= /health", "~ ^/v1/(chat/completions|completions|models)$", "= /metrics"]
