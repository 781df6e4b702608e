"""What ``versions.yaml`` pins for the tools that are built from source.

Each entry of its ``tools:`` mapping names a tool, the recipe that builds it
(``build:``), the Go module it comes from, a version, and the binaries it
provides. The flux CLI takes its version from ``flux.version``, and the Flux
controllers from the components that Flux version bundles (its
``manifests/bases``), less the ones ``flux.served_instead`` replaces because
the module proxy here refuses them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# The tiers a tool serves: the offline tier needs kustomize, the flux CLI,
# helm, actionlint and hclfmt;
# the cluster tier on kind needs kind, on kwok the control plane and the rest.
TIERS = ("offline", "kind", "kwok")


@dataclass(frozen=True)
class Tool:
    """One entry of versions.yaml ``tools:``."""

    name: str
    build: str  # go-install | go-wrapper | flux-cli | flux-controller | flux-operator
    module: str
    version: str
    packages: tuple[str, ...]
    binaries: tuple[str, ...]
    tiers: tuple[str, ...]
    local_replaces: str | None = None  # go-wrapper: the published version of the module's own local replaces
    version_ldflags: tuple[str, ...] = ()  # variables set to the version with -X
    note: str = ""
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"


@functools.lru_cache(maxsize=None)
def versions(root: Path = PROJECT_ROOT) -> dict:
    # libyaml when present: every tree a test makes reads this file again.
    with open(Path(root) / "versions.yaml", encoding="utf-8") as handle:
        return yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}


def flux_version(root: Path = PROJECT_ROOT) -> str:
    """``v`` + versions.yaml ``flux.version``."""
    return "v" + str(versions(root)["flux"]["version"]).lstrip("v")


def served_instead(root: Path = PROJECT_ROOT) -> dict[str, dict]:
    """Component -> {bundled, built, why}: where this machine builds another
    version than the one Flux bundles (versions.yaml ``flux.served_instead``)."""
    return dict(versions(root)["flux"].get("served_instead") or {})


def replace_refused(root: Path = PROJECT_ROOT) -> dict[str, dict]:
    """Module -> {refused, with, why}: dependencies of a component that the
    proxy refuses at the version the component requires."""
    return dict(versions(root)["flux"].get("replace_refused") or {})


@functools.lru_cache(maxsize=None)
def tools(root: Path = PROJECT_ROOT) -> dict[str, Tool]:
    """name -> Tool, in versions.yaml order."""
    out: dict[str, Tool] = {}
    for name, spec in (versions(root).get("tools") or {}).items():
        spec = dict(spec)
        build = spec.pop("build", "go-install")
        version = spec.pop("version", None)
        if build == "flux-cli":
            version = flux_version(root)
        elif build == "flux-controller" and not version:
            # The version this Flux bundles (its manifests/bases), or the one
            # flux.served_instead builds in its place.
            from .components import bundled
            from .gomod import BuildError

            try:
                version = bundled(root)[name].built
            except (BuildError, KeyError) as error:
                # Unknown until flux2's source can be read (needs Go once);
                # such a tool is simply not cached yet.
                version, spec["note"] = "unresolved", f"version unknown: {error}"
        if not version:
            raise ValueError(f"versions.yaml tools.{name}: no version")
        module = spec.pop("module")
        packages = tuple(spec.pop("packages", None) or [module])
        binaries = tuple(spec.pop("binaries", None) or _default_binaries(name, build, packages))
        tiers = tuple(spec.pop("tiers", None) or TIERS)
        unknown = [t for t in tiers if t not in TIERS]
        if unknown:
            raise ValueError(f"versions.yaml tools.{name}.tiers: unknown {unknown}; known: {TIERS}")
        out[name] = Tool(
            name=name,
            build=build,
            module=module,
            version=str(version),
            packages=packages,
            binaries=binaries,
            tiers=tiers,
            local_replaces=spec.pop("local_replaces", None),
            version_ldflags=tuple(spec.pop("version_ldflags", None) or ()),
            note=str(spec.pop("note", "")),
            extra=spec,
        )
    return out


def _default_binaries(name: str, build: str, packages: tuple[str, ...]) -> list[str]:
    """What ``go build`` names each package's binary: its last path element,
    less a major-version suffix (``.../kustomize/v5`` -> ``kustomize``)."""
    if build in ("flux-cli", "flux-controller"):
        return ["flux" if build == "flux-cli" else name]
    out = []
    for package in packages:
        parts = package.rstrip("/").split("/")
        if len(parts) > 1 and parts[-1][:1] == "v" and parts[-1][1:].isdigit():
            parts.pop()
        out.append(parts[-1])
    return out


def tool_for_binary(binary: str, root: Path = PROJECT_ROOT) -> Tool | None:
    """The tool that provides ``binary`` (``kubectl`` -> kubernetes)."""
    for tool in tools(root).values():
        if binary in tool.binaries:
            return tool
    return None


def for_tier(tier: str, root: Path = PROJECT_ROOT) -> list[Tool]:
    return [t for t in tools(root).values() if tier in t.tiers]
