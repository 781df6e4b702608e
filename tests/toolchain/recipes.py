"""Recipes as data: what versions.yaml pins for one thing the toolchain
builds, and what a build is handed. Nothing here builds anything or imports
another module of the toolchain, so every other module may import it.

Layering (a module imports only those above it):

    recipes, gomod            data; the ``go`` command
    cache                     where built things live
    components                the Flux components a Flux version bundles
    pins                      versions.yaml read into recipes
    builders/<kind>           one builder per kind of recipe
    install                   find or build, in order, and report
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Tool:
    """One entry of versions.yaml ``tools:``, or one image recipe of the kind
    tier (``build`` says which builder makes it)."""

    name: str
    build: str  # go-install | go-wrapper | flux-cli | flux-controller | flux-operator | debian-rootfs | kind-node | kind-images
    module: str
    version: str  # for the kind tier's images: a key over every input
    packages: tuple[str, ...]
    binaries: tuple[str, ...]  # what bin/ holds once built (images: the archives)
    tiers: tuple[str, ...]
    local_replaces: str | None = None  # go-wrapper: the published version of the module's own local replaces
    version_ldflags: tuple[str, ...] = ()  # variables set to the version with -X
    note: str = ""
    image: bool = False  # programs that only go into images: never looked up to run on the host
    needs: tuple[str, ...] = ()  # tools built first, whose bin/ folders the builder is handed
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class Build:
    """What a builder is handed: a scratch ``out`` folder whose ``bin/``
    receives the results, a ``work`` folder for sources, the build log, the
    project root, the ``bin/`` folder of every tool in ``Tool.needs``, and the
    project settings a recipe reads (versions.yaml as a mapping)."""

    out: Path
    work: Path
    log: Path
    root: Path
    needs: dict[str, Path]
    settings: dict

    def need(self, tool: str, binary: str | None = None) -> Path:
        """The folder of a needed tool, or one of its binaries."""
        folder = self.needs[tool]
        return folder / binary if binary else folder
