"""Thin helpers over the ``go`` command: fetch a module's source, copy it
somewhere writable, run a build with the project's flags."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
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


class ModuleVersionError(BuildError):
    """The module proxy does not give a module version; ``kind`` says what
    its answer shows:

    - ``missing``: the version does not exist (HTTP 404/410, "unknown
      revision", "invalid version"): the pin is wrong;
    - ``refused``: the version exists (the proxy serves its ``.info`` or
      ``go.mod``) but the proxy refuses its source (HTTP 403): pin the
      nearest served version and say so beside the pin;
    - ``unknown``: the proxy refuses even its ``.info`` (HTTP 403), which a
      proxy that serves an allow-list answers for a version that does not
      exist as well: its answer cannot tell a typo from a refused release.

    The message has no location: the caller knows the line that pins it."""

    def __init__(self, module: str, version: str, kind: str, reason: str, served: list[str]):
        self.module, self.version, self.kind, self.reason, self.served = module, version, kind, reason, served
        super().__init__(self.explain())

    def nearest(self) -> str | None:
        return nearest_version(self.version, self.served)

    def explain(self) -> str:
        served = ", ".join(self.served[-8:]) if self.served else "none it lists"
        listed = f"the versions of {self.module} it serves: {served}"
        if self.kind == "missing":
            return (f"{self.module} has no version {self.version}: the module proxy says it does not exist "
                    f"({self.reason}); {listed}. Fix the version")
        nearest = self.nearest()
        pin = f"pin the nearest served one ({nearest})" if nearest else "pin a served one"
        if self.kind == "refused":
            return (f"the module proxy refuses this exact version, {self.module}@{self.version}: it knows the version "
                    f"but does not serve its source ({self.reason}); {pin} and say so beside the pin")
        return (f"the module proxy does not serve {self.module}@{self.version} ({self.reason}). That answer does not "
                f"say whether {self.version} exists: this proxy answers the same for a version that does not. "
                f"{listed[0].upper() + listed[1:]}. If {self.version} is not a release of {self.module} "
                f"(check its tags), the pin is wrong: fix it; if it is one, {pin} and say so beside the pin")


def classify(reason: str) -> str:
    """``missing``, ``refused`` or ``unknown`` (see ``ModuleVersionError``)
    from the error ``go mod download -json`` reports."""
    lowered = reason.lower()
    if any(w in lowered for w in ("unknown revision", "invalid version", "404 not found", "410 gone",
                                   "no matching versions", "not found: ")):
        return "missing"
    if "403" in reason or "forbidden" in lowered:
        # The .info is fetched first: a refused zip or go.mod after it means the proxy knows the version.
        return "unknown" if ".info" in reason else "refused"
    return "other"


def served_versions(module: str, extra_env: dict[str, str] | None = None) -> list[str]:
    """The versions the module proxy lists for ``module`` (``@v/list``),
    oldest first; [] when it lists none or refuses the list."""
    proc = subprocess.run([go(), "list", "-m", "-json", "-versions", module], env=env(**(extra_env or {})),
                          capture_output=True, text=True, cwd=tempfile.gettempdir())
    try:
        return list(json.loads(proc.stdout or "{}").get("Versions") or [])
    except ValueError:
        return []


def nearest_version(version: str, served: list[str]) -> str | None:
    """The served release closest to ``version``: the newest not above it,
    else the oldest above it (pseudo-versions only when nothing else is)."""
    def key(v: str) -> tuple:
        core = v.lstrip("v").split("-", 1)[0].split("+", 1)[0]
        parts = [int(p) if p.isdigit() else 0 for p in core.split(".")[:3]]
        return tuple(parts + [0] * (3 - len(parts)))

    releases = [v for v in served if "-" not in v] or list(served)
    if not releases:
        return None
    wanted = key(version)
    below = [v for v in releases if key(v) <= wanted]
    return max(below, key=key) if below else min(releases, key=key)


def download(module: str, version: str, extra_env: dict[str, str] | None = None) -> Path:
    """The module's source in the module cache (read-only), fetched if
    needed; ``ModuleVersionError`` when the proxy does not give it."""
    proc = subprocess.run([go(), "mod", "download", "-json", f"{module}@{version}"],
                          env=env(**(extra_env or {})), capture_output=True, text=True)
    try:
        info = json.loads(proc.stdout or "{}")
    except ValueError:
        info = {}
    if proc.returncode != 0 or not info.get("Dir"):
        reason = (info.get("Error") or proc.stderr.strip() or f"exit {proc.returncode}").replace("\n\t", "; ")
        kind = classify(reason)
        if kind == "refused" and not (info.get("Info") or info.get("GoMod")):
            kind = "unknown"
        if kind != "other":
            raise ModuleVersionError(module, version, kind, reason, served_versions(module, extra_env))
        raise BuildError(f"cannot fetch {module}@{version}: {reason}")
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
