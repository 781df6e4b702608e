"""What the Go builders share: the link flags, one ``go build`` for all of a
tool's binaries, and the replacements of dependencies the proxy refuses."""

from __future__ import annotations

import re
from pathlib import Path

from .. import gomod
from ..recipes import Tool

LDFLAGS = "-s -w"


def ldflags(tool: Tool) -> str:
    return " ".join([LDFLAGS, *(f"-X {var}={tool.version}" for var in tool.version_ldflags)])


def build(tool: Tool, cwd: Path, out: Path, packages: list[str], log: Path) -> None:
    """One ``go build`` for all of a tool's binaries (they share compiled
    packages); a single package is written under the tool's binary name."""
    target = str(out / "bin" / tool.binaries[0]) if len(packages) == 1 else str(out / "bin") + "/"
    gomod.run([gomod.go(), "build", "-ldflags", ldflags(tool), "-o", target, *packages], cwd=cwd,
              what=f"go build of {tool.name} {tool.version}", log=log)


def apply_refused_replaces(module_dir: Path, log: Path, settings: dict) -> list[str]:
    """Replace dependencies the proxy refuses (versions.yaml
    ``flux.replace_refused``) where this module requires exactly one of the
    refused versions (``refused``: a version or a list of them)."""
    go_mod = (module_dir / "go.mod").read_text(encoding="utf-8")
    done = []
    for module, spec in ((settings.get("flux") or {}).get("replace_refused") or {}).items():
        refused = spec["refused"] if isinstance(spec["refused"], list) else [spec["refused"]]
        for version in map(str, refused):
            if re.search(rf"^\s*(require\s+)?{re.escape(module)}\s+{re.escape(version)}\b", go_mod, re.M):
                gomod.run([gomod.go(), "mod", "edit", f"-replace={module}={module}@{spec['with']}"], cwd=module_dir,
                          what=f"replace {module}", log=log)
                done.append(f"{module} {version} -> {spec['with']}")
    return done


def sumdb_env(module: str, settings: dict) -> dict[str, str]:
    """GONOSUMDB for a module versions.yaml ``flux.not_in_checksum_db`` names:
    one the proxy serves at a version the public checksum database lacks."""
    skip = (settings.get("flux") or {}).get("not_in_checksum_db") or []
    return {"GONOSUMDB": ",".join(skip)} if module in skip else {}


def flux_components(settings: dict):
    """The components the pinned Flux bundles (``components.bundled``)."""
    from .. import components

    flux = settings.get("flux") or {}
    return components.bundled("v" + str(flux["version"]).lstrip("v"), dict(flux.get("served_instead") or {}))
