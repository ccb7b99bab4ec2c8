"""Every command of docs/kubernetes.md (and of the stack scripts it runs), exercised offline.

The ```bash blocks are split into simple commands (shlex, the way a shell tokenises
them). Each command is classified by its program:

* ``drugslm``: parsed by the real CLI (typer/click, the delegated ``schedule`` and
  ``kubeflow`` apps included); the offline ones run (``settings``, ``schedule render``);
* ``zenml``: parsed by ZenML's click CLI; ``<component> register --flavor=F --key=...``
  keys are checked against the flavor's config class, as ZenML validates them;
* ``kubectl kustomize`` / ``kubectl apply -k``: the path renders; ``bash stacks/*.sh``: the
  script passes ``bash -n`` and its ``$ZENML`` commands are checked as above;
* ``helm``/``docker``/``pytest``/``make``: the files, test modules and targets they name exist;
* everything else needs a cluster or a cloud account and is listed in
  ``CLUSTER_ONLY`` (the runbook's "what has not been run" names these); an unknown
  program fails the test, so a new command must be classified.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from typer.main import get_command

from tests.k8s import rendered

REPO_ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = REPO_ROOT / "docs" / "kubernetes.md"
SEPARATORS = {"&&", "||", ";", "|", "&", "(", ")", ";;"}
SHELL_WORDS = {"for", "do", "done", "if", "then", "fi", "in", "export", "set", ":", "cd", "true"}
# Programs whose commands need a cluster, a cloud account or an editor: only the files
# they name are checked.
CLUSTER_ONLY = {"aws", "eksctl", "gcloud", "helm", "kubectl", "docker", "curl", "openssl", "cp", "rm", "awk",
                "$EDITOR", "echo", "less", "tail"}

FLAVORS = {
    ("orchestrator", "kubernetes"): "zenml.integrations.kubernetes.flavors.KubernetesOrchestratorFlavor",
    ("orchestrator", "drugslm_kubeflow"): "drugslm_ops.kubeflow.DrugslmKubeflowOrchestratorFlavor",
    ("artifact-store", "s3"): "zenml.integrations.s3.flavors.S3ArtifactStoreFlavor",
    ("experiment-tracker", "mlflow"): "zenml.integrations.mlflow.flavors.MLFlowExperimentTrackerFlavor",
    ("model-registry", "mlflow"): "zenml.integrations.mlflow.flavors.MLFlowModelRegistryFlavor",
    ("container-registry", "default"): "zenml.container_registries.DefaultContainerRegistryFlavor",
    ("image-builder", "local"): "zenml.image_builders.LocalImageBuilderFlavor",
}


def bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, re.S)


def simple_commands(script: str) -> list[list[str]]:
    """The simple commands of a shell snippet (placeholders like <chart version> become one word)."""
    script = re.sub(r"<([^<>\n]+)>", lambda m: "PLACEHOLDER_" + re.sub(r"\W", "_", m.group(1)), script)
    script = script.replace("\\\n", " ")
    commands = []
    for line in script.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|()")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        current: list[str] = []
        for token in lexer:
            if token in SEPARATORS:
                commands.append(current)
                current = []
            else:
                current.append(token)
        commands.append(current)
    out = []
    for command in commands:
        if command[:1] == ["for"]:  # loop header: `for VAR in WORDS`
            continue
        while command and (re.match(r"^[A-Z_][A-Z0-9_]*=", command[0]) or command[0] in SHELL_WORDS):
            command = command[1:]
        if command and command[0] not in {">", "2>"}:
            out.append([w for w in command if w not in {">", "<"}])
    return out


def runbook_commands() -> list[list[str]]:
    return [c for block in bash_blocks(RUNBOOK.read_text()) for c in simple_commands(block)]


def walk(root: click.Command, args: list[str]) -> tuple[click.Command, dict[str, Any]]:
    """Resolve subcommands like click does and parse the options of the last one (no callback runs)."""
    # Duck-typed: typer vendors its own copy of click, ZenML uses click itself.
    command, rest = root, list(args)
    ctx = root.context_class(root, info_name="root")
    while hasattr(command, "list_commands"):
        assert rest, f"{args}: missing subcommand"
        sub = command.get_command(ctx, rest[0])
        assert sub is not None, f"{args}: no command {rest[0]!r}"
        command, rest = sub, rest[1:]
        ctx = command.context_class(command, info_name=command.name, parent=ctx)
    parsed = command.make_context(command.name or "cmd", rest, parent=ctx.parent)
    return command, parsed.params


def drugslm_root(args: list[str]) -> tuple[click.Command, list[str]]:
    from drugslm_core.cli import app

    if args and args[0] in {"schedule", "kubeflow", "stack"}:  # the tooling's typer apps (entry points)
        from importlib.metadata import entry_points

        [entry] = entry_points(group="drugslm.commands", name=args[0])
        return get_command(entry.load()), args[1:]
    return get_command(app), args


def check_drugslm(args: list[str]) -> None:
    root, rest = drugslm_root(args)
    walk(root, rest)


def check_zenml(args: list[str]) -> None:
    from zenml.cli.cli import cli

    command, params = walk(cli, args)
    if len(args) > 1 and args[1] == "register" and params.get("flavor"):
        key = (args[0], params["flavor"])
        assert key in FLAVORS, f"zenml {' '.join(args[:3])}: flavor {key} not modelled in this test"
        module, _, name = FLAVORS[key].rpartition(".")
        flavor = getattr(__import__(module, fromlist=[name]), name)()
        fields = set(flavor.config_class.model_fields)
        for extra in params.get("args") or ():
            option = extra.split("=", 1)[0].lstrip("-")
            assert option in fields, f"zenml {args[0]} register: {option} is no field of {flavor.config_class.__name__}"


def _git_ignored(path: str) -> bool:
    return subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO_ROOT, check=False).returncode == 0


def check_paths(args: list[str]) -> None:
    for word in args:
        for path in re.findall(r"(?:^|=)((?:k8s|configs|docker|stacks|tests|src|pipelines)/[\w./-]+)", word):
            if _git_ignored(path):  # written by the reader (e.g. k8s/secrets.env), never committed
                continue
            assert (REPO_ROOT / path).exists(), f"{' '.join(args)}: {path} does not exist"


def check_command(args: list[str]) -> str:
    program, rest = args[0], args[1:]
    check_paths(args)
    if program == "drugslm":
        check_drugslm(rest)
    elif program == "zenml":
        check_zenml(rest)
    elif program == "bash":
        script = REPO_ROOT / rest[0]
        subprocess.run(["bash", "-n", str(script)], check=True)
        for command in simple_commands(script.read_text()):
            if command and command[0] == "$ZENML":
                check_zenml(command[1:])
    elif program == "kubectl" and rest[:1] == ["kustomize"]:
        rendered.render(Path(rest[1]).name)
    elif program == "kubectl" and "-k" in rest and rest[rest.index("-k") + 1].startswith("build/"):
        # written by a deployment run (serving/deployment.render_manifests, rendered with kustomize
        # in tests/integration/test_deploy_production.py); applying it needs the cluster
        return "cluster-only"
    elif program == "kubectl" and "-k" in rest:
        rendered.render(Path(rest[rest.index("-k") + 1]).name)
    elif program == "make":
        assert re.search(rf"^{re.escape(rest[0])}:", (REPO_ROOT / "Makefile").read_text(), re.M), rest[0]
    elif program in {"pytest", "python"}:
        pass  # paths checked above
    else:
        assert program in CLUSTER_ONLY, f"runbook command not classified (offline check or CLUSTER_ONLY): {args}"
        return "cluster-only"
    return "offline"


def test_runbook_has_sections_10_to_13() -> None:
    text = RUNBOOK.read_text()
    for number, title in ((10, "Schedule retraining"), (11, "Promote a model"), (12, "Serve"), (13, "Operations")):
        assert re.search(rf"^## {number}\. {title}", text, re.M), f"section {number} missing"
    for link in re.findall(r"\]\(#([\w-]+)\)", text):
        headings = {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in re.findall(r"^#+ (.+)$", text, re.M)}
        assert link in headings, f"contents link #{link} has no heading"


def test_section_pointers_in_other_files_name_existing_sections() -> None:
    text = RUNBOOK.read_text()
    numbers = set(re.findall(r"^##+ (\d+(?:\.\d+)?)\.? ", text, re.M))
    for path in [*REPO_ROOT.glob("configs/*.yaml"), *REPO_ROOT.glob("src/drugslm_ops/**/*.py"), *REPO_ROOT.glob("stacks/*.sh"),
                 *REPO_ROOT.glob("k8s/**/*.yaml")]:
        for number in re.findall(r"docs/kubernetes\.md §(\d+(?:\.\d+)?)", path.read_text()):
            assert number in numbers, f"{path.relative_to(REPO_ROOT)} points to §{number}, which does not exist"


def test_every_runbook_command_parses_or_is_cluster_only() -> None:
    commands = runbook_commands()
    kinds = [check_command(c) for c in commands]
    programs = {c[0] for c in commands}
    assert {"drugslm", "zenml", "bash", "kubectl", "helm"} <= programs
    assert kinds.count("offline") >= 20, f"only {kinds.count('offline')} commands checked offline"


def test_stack_scripts_parse() -> None:
    for script in ("k8s.sh", "kubeflow.sh"):
        assert check_command(["bash", f"stacks/{script}"]) == "offline"


def test_offline_runbook_commands_run(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from drugslm_core.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["settings", "--config", "configs/k8s-gpu.yaml"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["base_model"]["source"] == "HuggingFaceTB/SmolLM2-1.7B-Instruct"
    from drugslm_ops.schedules import app as schedule_app

    out = tmp_path / "cronjob.yaml"
    result = runner.invoke(schedule_app, ["render", "-o", str(out)])
    assert result.exit_code == 0, result.output
    (cron_job,) = [d for d in yaml.safe_load_all(out.read_text()) if d]
    assert cron_job["kind"] == "CronJob" and cron_job["spec"]["schedule"] == "0 3 * * 1"
    assert cron_job["spec"]["concurrencyPolicy"] == "Forbid"


@pytest.mark.parametrize("bad", [["zenml", "orchestrator", "register", "o", "--flavor=kubernetes", "--no_such_key=1"],
                                 ["drugslm", "schedule", "create", "--no-such-flag"],
                                 ["drugslm", "model", "promote"],
                                 ["frobnicate", "--now"]])
def test_checker_rejects_wrong_commands(bad: list[str]) -> None:
    import typer

    with pytest.raises((AssertionError, click.UsageError, typer.BadParameter.__mro__[1])):
        check_command(bad)
