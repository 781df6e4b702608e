"""Thin helpers over the ``go`` command: fetch a module's source, copy it
somewhere writable, run a build with the project's flags."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path


class BuildError(RuntimeError):
    """A step of a build failed; the message says which and what Go said."""


def go() -> str:
    found = shutil.which("go")
    if found is None:
        raise BuildError("Go is not installed: the tools are built from source with `go` (install Go 1.26 or newer)")
    return found


def env(**extra: str) -> dict[str, str]:
    """The environment every build runs with: static binaries, no paths of
    this machine in them, dependencies resolved from the module proxy."""
    out = dict(os.environ)
    out.update(CGO_ENABLED="0", GOFLAGS="-mod=mod -trimpath -buildvcs=false", GOWORK="off")
    out.update(extra)
    return out


def run(args: list[str], cwd: Path, what: str, extra_env: dict[str, str] | None = None,
        log: Path | None = None) -> str:
    """Run ``args`` in ``cwd``; on failure raise with the tail of the output.
    The whole output also goes to ``log`` when given."""
    proc = subprocess.run(args, cwd=cwd, env=env(**(extra_env or {})), capture_output=True, text=True)
    output = proc.stdout + proc.stderr
    if log is not None:
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(f"$ {' '.join(args)}   (in {cwd})\n{output}\n")
    if proc.returncode != 0:
        tail = "\n    ".join(output.strip().splitlines()[-12:])
        raise BuildError(f"{what}: `{' '.join(args[:4])} ...` exited {proc.returncode}:\n    {tail}")
    return proc.stdout


def download(module: str, version: str, extra_env: dict[str, str] | None = None) -> Path:
    """The module's source in the module cache (read-only), fetched if needed."""
    proc = subprocess.run([go(), "mod", "download", "-json", f"{module}@{version}"],
                          env=env(**(extra_env or {})), capture_output=True, text=True)
    try:
        info = json.loads(proc.stdout or "{}")
    except ValueError:
        info = {}
    if proc.returncode != 0 or not info.get("Dir"):
        reason = info.get("Error") or proc.stderr.strip() or f"exit {proc.returncode}"
        hint = ""
        if "403" in reason or "Forbidden" in reason:
            hint = (" (the module proxy refuses this exact version: pin the nearest served one in "
                    "versions.yaml and say so beside the pin)")
        raise BuildError(f"cannot fetch {module}@{version}: {reason}{hint}")
    return Path(info["Dir"])


def writable_copy(source: Path, target: Path) -> Path:
    """Copy a module out of the read-only module cache."""
    shutil.copytree(source, target, symlinks=True)
    for path in [target, *target.rglob("*")]:
        if not path.is_symlink():
            mode = path.stat().st_mode
            path.chmod(mode | stat.S_IWUSR)
    return target


def go_directive(go_mod: Path) -> str:
    for line in go_mod.read_text(encoding="utf-8").splitlines():
        if line.startswith("go "):
            return line.split()[1]
    return "1.22"


def local_replaces(go_mod: Path) -> list[str]:
    """The module paths a go.mod replaces with a local directory (``=> ./x``
    or ``=> ../x``), the ones a module zip cannot satisfy."""
    out = []
    in_block = False
    for raw in go_mod.read_text(encoding="utf-8").splitlines():
        line = raw.split("//")[0].strip()
        if line.startswith("replace ("):
            in_block = True
            continue
        if in_block and line == ")":
            in_block = False
            continue
        if line.startswith("replace "):
            line = line[len("replace "):]
        elif not in_block:
            continue
        if "=>" not in line:
            continue
        left, right = (part.split() for part in line.split("=>", 1))
        target = right[0] if right else ""
        if target.startswith("./") or target.startswith("../"):
            if "FORBIDDEN" in target:
                continue
            out.append(left[0])
    return out
