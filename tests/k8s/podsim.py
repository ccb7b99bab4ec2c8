"""Run a pod's container locally, as the pod would, without a cluster or the image.

A throw-away root is assembled in a private mount namespace (``unshare -m``):

* the image's file layout comes from ``docker/Dockerfile`` (``WORKDIR``, the ``COPY``
  lines, ``ENV``, the ``useradd`` home and ``USER``): the copied sources are laid out
  root-owned under the working directory, the home directory belongs to the image user;
* the Python environment is this project's virtualenv (the same lock file the image
  installs), bind-mounted read-only at its own path — the one deliberate difference from
  the image, whose packages live in the system site-packages;
* ``readOnlyRootFilesystem: true`` makes that root read-only; only the pod's declared
  ``emptyDir`` volume mounts are writable (tmpfs);
* the pod's own PID namespace (and, on request, network namespace: loopback only);
* the process runs with the pod's uid/gid (``setpriv``), ``env -i`` plus the image's
  ``ENV`` and the container's ``env`` (ConfigMap keys resolved from the rendered objects,
  Secret keys replaced by a placeholder), in the container's working directory.

Needs root (to mount and switch user); :func:`available` says whether it can run here.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "docker" / "Dockerfile"
HOST_DIRS = ("usr", "etc")
HOST_LINKS = ("bin", "sbin", "lib", "lib64")


@dataclass
class ImageLayout:
    """What docker/Dockerfile puts into the image, as far as a pod can observe it."""

    workdir: str = "/"
    copies: list[tuple[list[str], str]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    user: tuple[int, int] = (0, 0)
    home: str | None = None


def logical_lines(text: str) -> list[str]:
    """A Dockerfile's instructions as single lines: comments dropped, continuations joined."""
    lines, current = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    return lines


def parse_dockerfile(path: Path = DOCKERFILE) -> ImageLayout:
    """The parts of the Dockerfile (final stage) that decide what a container sees."""
    layout = ImageLayout()
    for line in logical_lines(path.read_text()):
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            layout = ImageLayout()
        elif instruction == "WORKDIR":
            layout.workdir = os.path.join(layout.workdir, rest.strip())
        elif instruction == "COPY":
            parts = [p for p in shlex.split(rest) if not p.startswith("--")]
            *sources, dest = parts
            layout.copies.append((sources, os.path.normpath(os.path.join(layout.workdir, dest))))
        elif instruction == "ENV":
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                layout.env[key] = value
        elif instruction == "USER":
            uid, _, gid = rest.strip().partition(":")
            layout.user = (int(uid), int(gid or uid))
        elif instruction == "RUN" and "useradd" in rest:
            words = shlex.split(rest.replace("&&", " ; "))
            if "--home-dir" in words:
                layout.home = words[words.index("--home-dir") + 1]
    return layout


def available() -> tuple[bool, str]:
    if os.geteuid() != 0:
        return False, "pod emulation needs root (mount namespace + setpriv)"
    for tool in ("unshare", "setpriv", "chroot", "mount"):
        if shutil.which(tool) is None:
            return False, f"pod emulation needs `{tool}`"
    probe = subprocess.run(
        ["unshare", "-m", "-p", "--fork", "--kill-child", "--propagation", "private", "true"],
        capture_output=True, check=False,
    )
    if probe.returncode != 0:
        return False, f"mount namespaces unavailable: {probe.stderr.decode().strip()}"
    return True, ""


def _copy_layout(layout: ImageLayout, dest_root: Path) -> None:
    """COPY the repository files into ``dest_root`` as root-owned, not group/world-writable."""
    for sources, dest in layout.copies:
        target_dir = dest_root / dest.lstrip("/")
        for source in sources:
            src = REPO_ROOT / source
            if src.is_dir():
                shutil.copytree(
                    src, target_dir, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache"),
                )
            else:
                target_dir.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target_dir / src.name)
    for dirpath, _dirnames, filenames in os.walk(dest_root):
        os.chown(dirpath, 0, 0)
        os.chmod(dirpath, 0o755)
        for name in filenames:
            os.chown(os.path.join(dirpath, name), 0, 0)
            os.chmod(os.path.join(dirpath, name), 0o644)


def container_env(
    container: dict[str, Any], configmaps: dict[str, dict[str, str]], secrets: dict[str, dict[str, str]] | None = None
) -> dict[str, str]:
    """The container's environment as the kubelet would set it (Secret values from ``secrets``, else placeholders)."""
    env: dict[str, str] = {}
    for item in container.get("env") or []:
        if "value" in item:
            env[item["name"]] = str(item["value"])
            continue
        source = item.get("valueFrom") or item.get("value_from") or {}
        ref = source.get("configMapKeyRef") or source.get("config_map_key_ref")
        secret = source.get("secretKeyRef") or source.get("secret_key_ref")
        if ref:
            value = configmaps.get(ref["name"], {}).get(ref["key"])
            if value is None and not ref.get("optional"):
                raise KeyError(f"ConfigMap {ref['name']} has no key {ref['key']}")
            if value is not None:
                env[item["name"]] = value
        elif secret:
            value = (secrets or {}).get(secret["name"], {}).get(secret["key"])
            env[item["name"]] = value if value is not None else f"placeholder-secret-{secret['name']}-{secret['key']}"
    return env


def expand(words: list[str], env: dict[str, str]) -> list[str]:
    """The kubelet's ``$(VAR)`` expansion of command and args (``$$`` escapes, unknown names stay)."""
    pattern = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return [pattern.sub(one, word) for word in words]


@dataclass
class PodRun:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_container(
    pod_spec: dict[str, Any],
    container: dict[str, Any],
    argv: list[str],
    workdir: Path,
    configmaps: dict[str, dict[str, str]] | None = None,
    extra_env: dict[str, str] | None = None,
    extra_ro_binds: dict[str, Path] | None = None,
    layout: ImageLayout | None = None,
    timeout: int = 300,
    secrets: dict[str, dict[str, str]] | None = None,
    network_namespace: bool = False,
) -> PodRun:
    """Run ``argv`` in ``container`` of ``pod_spec`` (a rendered pod spec) as the kubelet would."""
    layout = layout or parse_dockerfile()
    pod_sc = pod_spec.get("securityContext") or {}
    ctr_sc = container.get("securityContext") or {}
    uid = ctr_sc.get("runAsUser", pod_sc.get("runAsUser", layout.user[0]))
    gid = ctr_sc.get("runAsGroup", pod_sc.get("runAsGroup", layout.user[1]))
    read_only_root = bool(ctr_sc.get("readOnlyRootFilesystem"))
    volumes = {v["name"]: v for v in pod_spec.get("volumes") or []}
    mounts = []
    secret_mounts: list[tuple[str, Path]] = []
    fs_group = pod_sc.get("fsGroup")
    for mount in container.get("volumeMounts") or container.get("volume_mounts") or []:
        volume = volumes[mount["name"]]
        path = mount.get("mountPath") or mount["mount_path"]
        if "secret" in volume:
            # The kubelet's Secret volume: the listed keys as files, root-owned, group fsGroup.
            source = volume["secret"]
            data = (secrets or {})[source["secretName"]]
            folder = workdir / "secrets" / mount["name"]
            folder.mkdir(parents=True)
            items = source.get("items") or [{"key": k, "path": k} for k in data]
            for item in items:
                file = folder / item["path"]
                file.write_text(data[item["key"]])
                os.chown(file, 0, fs_group if fs_group is not None else 0)
                os.chmod(file, item.get("mode", source.get("defaultMode", 0o644)))
            secret_mounts.append((path, folder))
        elif "emptyDir" in volume or "empty_dir" in volume:
            mounts.append(path)
        else:
            raise ValueError(f"volume {mount['name']}: only emptyDir and Secret volumes are emulated")

    app = workdir / "image"
    app.mkdir()
    _copy_layout(layout, app)
    passwd = workdir / "passwd"
    group = workdir / "group"
    passwd.write_text(Path("/etc/passwd").read_text() + f"drugslm:x:{uid}:{gid}::{layout.home or '/'}:/usr/sbin/nologin\n")
    group.write_text(Path("/etc/group").read_text() + f"drugslm:x:{gid}:\n")

    env = dict(layout.env)
    env.update(container_env(container, configmaps or {}, secrets))
    env.update(extra_env or {})
    venv_bin = str(Path(sys.prefix) / "bin")
    env["PATH"] = f"{venv_bin}:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    cwd = container.get("workingDir") or container.get("working_dir") or layout.workdir

    root = workdir / "root"
    root.mkdir()
    q = shlex.quote
    script = ["set -eu", f"R={q(str(root))}", 'mount -t tmpfs -o mode=755 tmpfs "$R"']
    if network_namespace:  # a pod's own network: loopback only, ports free of the host's
        script.append("ip link set lo up")

    def ro_bind(src: str, dest: str) -> None:
        script.append(f'mkdir -p "$R"{q(dest)}')
        script.append(f'mount --rbind {q(src)} "$R"{q(dest)}')
        script.append(f'mount -o remount,bind,ro "$R"{q(dest)}')

    for name in HOST_LINKS:
        host = Path("/") / name
        if host.is_symlink():
            script.append(f'ln -s {q(os.readlink(host))} "$R"/{name}')
        elif host.is_dir():
            ro_bind(str(host), f"/{name}")
    for name in HOST_DIRS:
        ro_bind(f"/{name}", f"/{name}")
    script.append(f'mount --bind {q(str(passwd))} "$R"/etc/passwd')
    script.append(f'mount --bind {q(str(group))} "$R"/etc/group')
    script.append('mkdir -p "$R"/dev && mount --rbind /dev "$R"/dev')
    # The pod's own PID namespace (unshare -p): its /proc shows only its processes.
    script.append('mkdir -p "$R"/proc && mount -t proc proc "$R"/proc')
    for dest, src in (extra_ro_binds or {}).items():
        ro_bind(str(src), dest)
    # The image's own files: the COPY'd code (root-owned), its home directory and /tmp.
    for top in sorted({p.relative_to(app).parts[0] for p in app.iterdir()}):
        script.append(f'mkdir -p "$R"/{q(top)} && mount --bind {q(str(app / top))} "$R"/{q(top)}')
        if read_only_root:
            script.append(f'mount -o remount,bind,ro "$R"/{q(top)}')
    if layout.home:
        script.append(f'mkdir -p "$R"{q(layout.home)} && chown {layout.user[0]}:{layout.user[1]} "$R"{q(layout.home)}')
        script.append(f'chmod 700 "$R"{q(layout.home)}')
    script.append('mkdir -p "$R"/tmp && chmod 1777 "$R"/tmp')
    # Declared writable volumes (emptyDir): the only writable paths of a read-only root.
    for path in mounts:
        script.append(f'mkdir -p "$R"{q(path)} && mount -t tmpfs -o mode=1777 tmpfs "$R"{q(path)}')
    for path, folder in secret_mounts:
        ro_bind(str(folder), path)
    # The project's Python environment (interpreter, virtualenv, editable src/), read-only. Bound
    # after the volumes: a checkout under /tmp would otherwise be hidden by an emptyDir on /tmp.
    for path in {Path(sys.base_prefix).resolve(), Path(sys.prefix), REPO_ROOT / "src"}:
        ro_bind(str(path), str(path))
    if read_only_root:
        script.append('mount -o remount,ro "$R"')
    env_args = " ".join(q(f"{k}={v}") for k, v in sorted(env.items()))
    command = " ".join(q(a) for a in argv)
    script.append(
        f'exec chroot "$R" /usr/bin/env -i {env_args} /usr/bin/setpriv --reuid={uid} --regid={gid} --clear-groups '
        f"-- /bin/sh -c {q('cd ' + q(cwd) + ' && exec ' + command)}"
    )
    script_path = workdir / "pod.sh"
    script_path.write_text("\n".join(script) + "\n")
    proc = subprocess.run(
        # --kill-child: when the test gives up, every process of the emulated pod goes too.
        ["unshare", "-m", "-p", "--fork", "--kill-child", *(["-n"] if network_namespace else []),
         "--propagation", "private", "bash", str(script_path)],
        capture_output=True, text=True, timeout=timeout, check=False,
    )
    return PodRun(proc.returncode, proc.stdout, proc.stderr)
