"""The core's import graph: dependencies point one way, and the core never reaches into tooling.

data → quality → modeling → evaluation → registry → serving, with config below all and the
command line (``cli``) on top. A module may import only from its own layer or a layer to its
left. Every ``import`` statement counts, deferred ones inside functions included. A new
subpackage of ``drugslm_core`` must be given its layer in ``LAYERS`` (the test says so).
"""

from __future__ import annotations

import ast
from pathlib import Path

import drugslm_core

CORE = Path(drugslm_core.__file__).parent

LAYERS = {
    "config": 0,
    "pages": 0,  # the Jinja environment and shared stylesheet: data, quality and evaluation render through it
    "data": 1,
    "quality": 2,
    "retrieval": 3,  # the leaflet index is built from accepted records; evaluation and serving use it
    "modeling": 4,
    "evaluation": 5,
    "registry": 6,
    "serving": 7,
    "feedback": 7,  # traces and feedback in MLflow: at the serving level (docs/ARCHITECTURE)
    "monitoring": 7,  # reads the champion (registry) and compares data: beside serving
    "cli": 8,
}

# Repository tooling and the orchestrator: the core is plain Python and never imports them.
FORBIDDEN_ROOTS = {"zenml", "ops", "stacks", "steps", "pipelines", "materializers", "drugslm_ops"}


def _layer_name(module: str) -> str | None:
    """``drugslm_core.registry.loading`` → ``registry``; ``drugslm_core`` itself → ``None``."""
    parts = module.split(".")
    if parts[0] != "drugslm_core" or len(parts) < 2:
        return None
    return parts[1]


def _source_modules() -> list[tuple[str, Path]]:
    modules = []
    for path in sorted(CORE.rglob("*.py")):
        relative = path.relative_to(CORE.parent).with_suffix("")
        parts = list(relative.parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules.append((".".join(parts), path))
    return modules


def _imports(module: str, path: Path) -> list[tuple[int, str]]:
    """Every module ``module`` imports (absolute names; relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                name = ".".join([*base, *([node.module] if node.module else [])])
            else:
                name = node.module or ""
            found.append((node.lineno, name))
    return found


def test_every_core_package_has_a_layer() -> None:
    unknown = sorted(
        {name for module, _ in _source_modules() if (name := _layer_name(module)) and name not in LAYERS}
    )
    assert not unknown, f"give these drugslm_core packages a layer in LAYERS: {unknown}"


def test_dependencies_point_one_way() -> None:
    violations = []
    for module, path in _source_modules():
        own = _layer_name(module)
        if own is None or own not in LAYERS:
            continue
        for line, imported in _imports(module, path):
            target = _layer_name(imported)
            if target is not None and target in LAYERS and LAYERS[target] > LAYERS[own]:
                violations.append(f"{path.relative_to(CORE.parent)}:{line}: {own} imports {imported} ({target})")
    assert not violations, "right-to-left imports:\n" + "\n".join(violations)


def test_core_never_imports_tooling_or_zenml() -> None:
    violations = [
        f"{path.relative_to(CORE.parent)}:{line}: imports {imported}"
        for module, path in _source_modules()
        for line, imported in _imports(module, path)
        if imported.split(".")[0] in FORBIDDEN_ROOTS
    ]
    assert not violations, "the core imports tooling:\n" + "\n".join(violations)


def test_the_checker_sees_a_right_to_left_import(tmp_path: Path) -> None:
    """The graph walk itself: a deferred, relative import from evaluation into registry is found."""
    package = tmp_path / "drugslm_core" / "evaluation"
    package.mkdir(parents=True)
    path = package / "probe.py"
    path.write_text("def f():\n    from ..registry.loading import RegisteredAdapter\n    return RegisteredAdapter\n")
    [(line, imported)] = _imports("drugslm_core.evaluation.probe", path)
    assert (line, imported) == (2, "drugslm_core.registry.loading")
    assert LAYERS[_layer_name(imported)] > LAYERS["evaluation"]


def test_core_never_edits_the_import_path() -> None:
    """The core finds nothing through ``sys.path`` edits: the tooling is an installed package."""
    offenders = [str(path.relative_to(CORE)) for path in CORE.rglob("*.py") if "sys.path" in path.read_text()]
    assert not offenders, offenders


def test_tooling_command_groups_are_entry_points_of_the_tooling_package() -> None:
    """``drugslm schedule|kubeflow|stack`` come from ``drugslm_ops`` through entry points (pyproject.toml)."""
    from importlib.metadata import entry_points

    found = {entry.name: entry.value for entry in entry_points(group="drugslm.commands")}
    assert set(found) == {"schedule", "kubeflow", "stack"}, found
    assert all(value.startswith("drugslm_ops.") and value.endswith(":app") for value in found.values()), found
