"""The CLI tools that are not Python packages: where to find them, and how to
install the pinned versions.

``versions.yaml`` pins each tool as a Go module and a version. The harness
looks for a tool in the project's ``.tools/bin`` first, then on ``PATH``.
``nox -s tools`` (or ``python -m harness.tools`` with ``tests`` on the Python
path) installs every missing tool with ``go install MODULE@VERSION`` into
``.tools/bin``. A check that needs a missing tool is skipped with
``missing_reason(name)``; it never passes silently.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from harness.model import PROJECT_ROOT

TOOLS_DIR = ".tools/bin"

# Tools whose main package cannot be built with `go install MODULE@VERSION`.
# The flux CLI's go.mod carries `replace` directives, which `go install` refuses
# outside its own module; it has to be built from a checkout of flux2 (or
# installed from its release binaries).
NOT_GO_INSTALLABLE = {
    "flux": (
        "the flux CLI cannot be built with `go install` (its go.mod has replace "
        "directives); install the flux release binary of the pinned version "
        "(versions.yaml flux.version) into .tools/bin or on PATH"
    ),
}


@functools.lru_cache(maxsize=None)
def pins(root: Path = PROJECT_ROOT) -> dict[str, dict[str, str]]:
    """The ``tools:`` mapping of versions.yaml: name -> {module, version}."""
    with open(Path(root) / "versions.yaml", encoding="utf-8") as handle:
        data = yaml.safe_load(handle) or {}
    return dict(data.get("tools") or {})


def tools_dir(root: Path = PROJECT_ROOT) -> Path:
    return Path(root) / TOOLS_DIR


def find(name: str, root: Path = PROJECT_ROOT) -> str | None:
    """The path of tool ``name``: ``<root>/.tools/bin/<name>`` if it is there,
    else the first ``name`` on PATH, else None."""
    local = tools_dir(root) / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which(name)


def go() -> str | None:
    return shutil.which("go")


def missing_reason(name: str, root: Path = PROJECT_ROOT) -> str:
    """Why a check that needs ``name`` is skipped, and what to do about it."""
    where = f"{name} not found in {TOOLS_DIR} or PATH"
    if name in NOT_GO_INSTALLABLE:
        return f"{where}; {NOT_GO_INSTALLABLE[name]}"
    if name not in pins(root):
        return f"{where}; it is not pinned in versions.yaml `tools:`"
    if go() is None:
        return f"{where}; run `nox -s tools` on a machine with Go to install the pinned version"
    return f"{where}; run `nox -s tools` to install the pinned version (needs Go)"


def install(name: str, root: Path = PROJECT_ROOT) -> str | None:
    """Install the pinned ``name`` into ``<root>/.tools/bin`` with ``go install``.

    Returns None on success, else the reason it failed (one line, with the
    tail of Go's output)."""
    pin = pins(root).get(name)
    if pin is None:
        return f"{name} is not pinned in versions.yaml `tools:`"
    if name in NOT_GO_INSTALLABLE:
        return NOT_GO_INSTALLABLE[name]
    go_bin = go()
    if go_bin is None:
        return f"cannot install {name}: Go is not installed (`go install` needs it)"
    target = tools_dir(root)
    target.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, GOBIN=str(target), GOFLAGS="-mod=mod")
    spec = f"{pin['module']}@{pin['version']}"
    proc = subprocess.run(
        [go_bin, "install", spec], env=env, cwd=target, capture_output=True, text=True
    )
    if proc.returncode != 0:
        tail = " ".join(proc.stderr.split())[-400:]
        return f"`go install {spec}` failed: {tail}"
    if find(name, root) is None:
        return f"`go install {spec}` succeeded but {target}/{name} is not there"
    return None


def ensure_all(root: Path = PROJECT_ROOT, names: list[str] | None = None) -> dict[str, str | None]:
    """Make every pinned tool available where Go allows it.

    Returns name -> None when the tool is found (already there or just
    installed), else the reason it is missing, ready to be a skip reason."""
    status: dict[str, str | None] = {}
    for name in names or list(pins(root)):
        if find(name, root) is not None:
            status[name] = None
            continue
        if go() is None or name in NOT_GO_INSTALLABLE:
            status[name] = missing_reason(name, root)
            continue
        failure = install(name, root)
        status[name] = None if failure is None else f"{name} not found and {failure}"
    return status


def version_drift(name: str, root: Path = PROJECT_ROOT) -> str | None:
    """A note when the tool found is not the pinned version (None when it is,
    or when the version cannot be read)."""
    path = find(name, root)
    pin = pins(root).get(name)
    if path is None or pin is None:
        return None
    try:
        proc = subprocess.run(
            ["go", "version", "-m", path], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "mod":
            found = parts[2]
            if found != pin["version"]:
                return f"{name} at {path} is {found}, versions.yaml pins {pin['version']}"
            return None
    return None


def main(argv: list[str]) -> int:
    """Install the named tools (all when none are named); print what is where."""
    status = ensure_all(PROJECT_ROOT, argv or None)
    failed = 0
    for name, reason in status.items():
        if reason is None:
            drift = version_drift(name)
            print(f"{name:12} {find(name)}" + (f"  (note: {drift})" if drift else ""))
        else:
            failed += 1
            print(f"{name:12} MISSING: {reason}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
