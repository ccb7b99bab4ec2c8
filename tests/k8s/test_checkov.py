"""Security scan: checkov over both rendered overlays, zero failures, every skip documented.

checkov lives in its own virtualenv (``make checkov`` / ``make test`` create
``.venv-checkov`` from requirements-checkov.lock). Skips are either global
(``skip-check`` in .checkov.yaml) or per object (``checkov.io/skipN`` annotations);
each skipped check id must be listed with its reason in docs/kubernetes.md §13.4.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.k8s import rendered

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG = REPO_ROOT / ".checkov.yaml"
RUNBOOK = REPO_ROOT / "docs" / "kubernetes.md"
CHECKOV = next(
    (str(p) for p in (REPO_ROOT / ".venv-checkov" / "bin" / "checkov",) if p.exists()), shutil.which("checkov")
)

if CHECKOV is None and not os.environ.get("CI"):
    pytest.skip("checkov is not installed: run `make checkov` (its own virtualenv)", allow_module_level=True)
pytestmark = pytest.mark.skipif(rendered.KUBECTL is None, reason="kubectl not found: overlays cannot be rendered")


def _reports(payload: Any) -> list[dict[str, Any]]:
    return payload if isinstance(payload, list) else [payload]


@pytest.fixture(scope="module")
def scan(tmp_path_factory) -> dict[str, Any]:
    assert CHECKOV, "checkov missing in CI: `make test` installs it into .venv-checkov"
    folder = tmp_path_factory.mktemp("overlays")
    files = []
    for overlay in rendered.OVERLAYS:
        path = folder / f"{overlay}.yaml"
        path.write_text(yaml.safe_dump_all(rendered.render(overlay), sort_keys=False))
        files += ["-f", str(path)]
    proc = subprocess.run(
        [CHECKOV, "--config-file", str(CONFIG), *files, "-o", "json"],
        capture_output=True, text=True, timeout=600, check=False, cwd=REPO_ROOT,
    )
    assert proc.stdout.strip(), proc.stderr[-3000:]
    reports = _reports(json.loads(proc.stdout))
    results: dict[str, Any] = {"passed": [], "failed": [], "skipped": [], "parsing_errors": 0}
    for report in reports:
        for key in ("passed", "failed", "skipped"):
            results[key].extend((report.get("results") or {}).get(f"{key}_checks") or [])
        results["parsing_errors"] += (report.get("summary") or {}).get("parsing_errors", 0)
    return {"returncode": proc.returncode, **results}


def test_checkov_finds_no_failures(scan) -> None:
    failures = [f"{c['check_id']} {c['resource']} ({c['check_name']})" for c in scan["failed"]]
    assert not failures, "checkov failures (fix them, or skip with a reason in §13.4):\n" + "\n".join(failures)
    assert scan["returncode"] == 0 and scan["parsing_errors"] == 0
    assert len(scan["passed"]) > 500, "the scan checked far fewer objects than the overlays hold"


def _documented_skips() -> dict[str, str]:
    text = RUNBOOK.read_text()
    section = text[text.index("### 13.4"):]
    section = section[: section.index("\n## ")] if "\n## " in section else section
    return dict(re.findall(r"\|\s*`(CKV_K8S_\d+)`\s*\|[^|]*\|\s*([^|]+?)\s*\|", section))


def test_every_skip_has_a_reason_in_the_runbook(scan) -> None:
    documented = _documented_skips()
    global_skips = yaml.safe_load(CONFIG.read_text()).get("skip-check") or []
    annotated = {
        value.split("=", 1)[0]
        for overlay in rendered.OVERLAYS
        for obj in rendered.render(overlay)
        for key, value in (obj["metadata"].get("annotations") or {}).items()
        if key.startswith("checkov.io/skip")
    }
    skipped = {c["check_id"] for c in scan["skipped"]}
    assert skipped <= annotated, "checkov skipped checks no annotation asks for"
    for check in set(global_skips) | annotated:
        assert documented.get(check), f"{check} is skipped but docs/kubernetes.md §13.4 gives no reason"
    for overlay in rendered.OVERLAYS:
        for obj in rendered.render(overlay):
            for key, value in (obj["metadata"].get("annotations") or {}).items():
                if key.startswith("checkov.io/skip"):
                    check, _, reason = value.partition("=")
                    assert len(reason.split()) >= 5, f"{obj['kind']}/{obj['metadata']['name']}: {check} needs a reason"
