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
from dataclasses import replace
from pathlib import Path

import yamlload

from . import components as flux_components
from .gomod import BuildError
from .inputs import chart_pin, file_digest
from .recipes import Tool

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# Recipes whose version is a key over all their inputs (the kind tier's images).
KEYED = {"debian-rootfs": ("debian_rootfs",), "kind-node": ("kind_node", "images"),
         "kind-images": ("kind_images", "images")}
PREBUILT_ENV = "GITOPS_WHITEPAPER_PREBUILT"

# The tiers a tool serves: the offline tier needs kustomize, the flux CLI,
# helm, actionlint and hclfmt;
# the cluster tier on kind needs kind, on kwok the control plane and the rest.
TIERS = ("offline", "kind", "kwok")


def versions_text(root: Path = PROJECT_ROOT) -> str:
    with open(Path(root) / "versions.yaml", encoding="utf-8") as handle:
        return handle.read()


def versions(root: Path = PROJECT_ROOT) -> dict:
    """versions.yaml of ``root``: read each time, parsed once per content.
    What is worked out from it is cached by its content too, never by the
    folder alone: the harness's own tests make trees in temporary folders,
    and a later test's tree may get the folder of an earlier one (pytest
    reuses the name of a folder it removed). Every module that reads its
    values reads them through here. The result is shared: nothing may
    change it."""
    return _parsed_versions(versions_text(root))


@functools.lru_cache(maxsize=16)
def _parsed_versions(text: str) -> dict:
    return yamlload.load(text) or {}  # libyaml when present


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


def tools(root: Path = PROJECT_ROOT) -> dict[str, Tool]:
    """name -> Tool, in versions.yaml order."""
    return _tools(Path(root), versions_text(root))


@functools.lru_cache(maxsize=16)
def _tools(root: Path, text: str) -> dict[str, Tool]:
    out: dict[str, Tool] = {}
    for name, spec in (_parsed_versions(text).get("tools") or {}).items():
        spec = dict(spec)
        build = spec.pop("build", "go-install")
        version = spec.pop("version", None)
        installed_by = spec.pop("installed_by", None)
        if build == "flux-cli":
            version = flux_version(root)
        elif build == "flux-controller" and installed_by and not version:
            # The version the Flux Operator (the tool named) installs for the
            # newest Flux of flux.version's minor it carries.
            try:
                version = operator_installs(root, installed_by)[component_of(spec["module"])]
            except (BuildError, KeyError) as error:
                version, spec["note"] = "unresolved", f"version unknown: {error}"
            instead = spec.get("served_instead") or {}
            if instead and version != "unresolved":
                if str(instead.get("installed")) != version:
                    raise ValueError(f"versions.yaml tools.{name}.served_instead says {installed_by} installs "
                                     f"{instead.get('installed')}, but it installs {version}: update or remove it")
                version = str(instead["built"])
        elif build == "flux-controller" and not version:
            # The version this Flux bundles (its manifests/bases), or the one
            # flux.served_instead builds in its place.
            try:
                version = bundled(root)[name].built
            except (BuildError, KeyError) as error:
                # Unknown until flux2's source can be read (needs Go once);
                # such a tool is simply not cached yet.
                version, spec["note"] = "unresolved", f"version unknown: {error}"
        chart = spec.pop("version_of_chart", None)
        if chart and not version:
            # One pin: the module version the chart's sources are taken at.
            version = ((versions(root).get("charts") or {}).get(chart) or {}).get("module_version")
            if not version:
                raise ValueError(f"versions.yaml tools.{name}.version_of_chart: charts: has no module_version "
                                 f"for {chart}")
        if build in KEYED and not version:
            version = "pending"  # the key, once every tool it needs is known (below)
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
            image=bool(spec.pop("image", False)),
            # The flux CLI's embedded manifests are made with kustomize.
            needs=tuple(spec.pop("needs", None) or (("kustomize",) if build in ("flux-cli", "flux-operator") else ())),
            extra=spec,
        )
    for name, tool in out.items():
        if tool.version == "pending":
            out[name] = replace(tool, version=input_key(tool, out, root))
    return out


def input_key(tool: Tool, known: dict[str, Tool], root: Path) -> str:
    """A key over everything a keyed recipe is made from: its versions.yaml
    entry, its builder's code, the tools it needs (with their keys), and
    what it reads from the tree and the prebuilt folder."""
    import hashlib
    import json

    digest = hashlib.sha256()
    digest.update(json.dumps([tool.name, tool.build, tool.module, tool.packages, tool.binaries, tool.needs,
                              tool.extra], sort_keys=True, default=str).encode())
    for module in KEYED[tool.build]:
        digest.update((Path(__file__).parent / "builders" / f"{module}.py").read_bytes())
    for need in tool.needs:
        needed = known.get(need)
        if needed is None:
            raise ValueError(f"versions.yaml tools.{tool.name}.needs: {need} is not a tool")
        digest.update(f"{needed.key}\n".encode())
    if tool.build == "kind-node":
        digest.update(f"kind {known['kind'].version}\n".encode())  # its base files and manifests
    for spec in (tool.extra.get("prebuilt") or {}).values():
        try:
            version = chart_pin(spec["chart"], root)
        except (ValueError, OSError):
            version = "unpinned"  # a tree without that chart: the builder says so, if it is ever built
        digest.update(f"{spec['chart']} {version}\n".encode())
        archive = prebuilt_archive(spec["archive"].format(version=version))
        digest.update((file_digest(archive) if archive else "none").encode())
    return "k" + digest.hexdigest()[:16]


def prebuilt_archive(name: str) -> Path | None:
    """The archive ``name`` in the prebuilt folder ($GITOPS_WHITEPAPER_PREBUILT), if any."""
    import os

    folder = os.environ.get(PREBUILT_ENV)
    path = Path(folder) / name if folder else None
    return path if path is not None and path.is_file() else None


def component_of(module: str) -> str:
    """The Flux component a controller module is (``github.com/fluxcd/source-watcher/v2``
    -> ``source-watcher``)."""
    parts = module.rstrip("/").split("/")
    if len(parts) > 1 and parts[-1][:1] == "v" and parts[-1][1:].isdigit():
        parts.pop()
    return parts[-1]


def operator_installs(root: Path, operator: str) -> dict[str, str]:
    """component -> version the Flux Operator pinned as tools.<operator>
    installs for a FluxInstance of flux.version's minor."""
    spec = (versions(root).get("tools") or {})[operator]
    return flux_components.installed_by_operator(spec["module"], str(spec["version"]),
                                                 flux_components.minor(flux_version(root)))


def _default_binaries(name: str, build: str, packages: tuple[str, ...]) -> list[str]:
    """What ``go build`` names each package's binary: its last path element,
    less a major-version suffix (``.../kustomize/v5`` -> ``kustomize``); a
    Flux controller's is its component's name."""
    if build == "flux-cli":
        return ["flux"]
    if build == "flux-controller":
        return [component_of(packages[0])]
    out = []
    for package in packages:
        parts = package.rstrip("/").split("/")
        if len(parts) > 1 and parts[-1][:1] == "v" and parts[-1][1:].isdigit():
            parts.pop()
        out.append(parts[-1])
    return out


def bundled(root: Path = PROJECT_ROOT) -> dict[str, flux_components.Component]:
    """The components the pinned Flux bundles, with what is built here."""
    return flux_components.bundled(flux_version(root), served_instead(root))


def tool_for_binary(binary: str, root: Path = PROJECT_ROOT) -> Tool | None:
    """The tool that provides ``binary`` (``kubectl`` -> kubernetes); never
    one whose programs only go into images."""
    for tool in tools(root).values():
        if binary in tool.binaries and not tool.image:
            return tool
    return None


def for_tier(tier: str, root: Path = PROJECT_ROOT) -> list[Tool]:
    return [t for t in tools(root).values() if tier in t.tiers]
