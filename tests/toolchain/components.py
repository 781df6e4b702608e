"""The Flux components a Flux version bundles, read from its own source.

flux2's ``manifests/bases/<component>/kustomization.yaml`` lists each
component's release assets by URL, for example
``https://github.com/fluxcd/source-controller/releases/download/v1.9.5/source-controller.crds.yaml``.
That URL names the component and the version this Flux release ships, so the
toolchain reads versions there instead of pinning them a second time.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import yamlload

from . import cache, gomod

FLUX_MODULE = "github.com/fluxcd/flux2/v2"
ASSET = re.compile(
    r"https://github\.com/fluxcd/(?P<repo>[\w.-]+)/releases/download/(?P<version>v[\w.+-]+)/"
    r"(?P<file>[\w.-]+\.(?:crds|deployment)\.yaml)"
)
# Components whose Go module path carries a major-version suffix.
_MAJOR = re.compile(r"^v(\d+)\.")


@dataclass(frozen=True)
class Component:
    name: str  # source-controller
    bundled: str  # the version this Flux release ships
    built: str  # the version built here (differs only where served_instead says)
    why: str  # why it differs, '' when it does not

    @property
    def module(self) -> str:
        major = int(_MAJOR.match(self.built).group(1))
        return f"github.com/fluxcd/{self.name}" + (f"/v{major}" if major >= 2 else "")


def read_bases(flux_source: Path) -> dict[str, str]:
    """component -> bundled version, from a flux2 source tree."""
    out: dict[str, str] = {}
    for kustomization in sorted((flux_source / "manifests" / "bases").glob("*/kustomization.yaml")):
        for match in ASSET.finditer(kustomization.read_text(encoding="utf-8")):
            out[match.group("repo")] = match.group("version")
    return out


def bundled(version: str, instead: dict[str, dict]) -> dict[str, Component]:
    """Every component of Flux ``version`` (``v2.9.5``), with what is built
    here: ``instead`` is versions.yaml ``flux.served_instead``.

    The list is remembered in the tool cache, so looking it up again needs
    neither Go nor the module cache."""
    memo = cache.tools_root() / ".components" / f"flux-{version}.json"
    try:
        versions = json.loads(memo.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        versions = read_bases(gomod.download(FLUX_MODULE, version))
        if not versions:
            raise gomod.BuildError(f"{FLUX_MODULE}@{version}: no component found in manifests/bases")
        memo.parent.mkdir(parents=True, exist_ok=True)
        memo.write_text(json.dumps(versions, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    out = {}
    for name, shipped in versions.items():
        override = instead.get(name) or {}
        if override and str(override.get("bundled")) != shipped:
            raise gomod.BuildError(
                f"versions.yaml flux.served_instead.{name} says Flux bundles {override.get('bundled')}, "
                f"but flux {version} bundles {shipped}: update or remove that entry"
            )
        out[name] = Component(name, shipped, str(override.get("built", shipped)), str(override.get("why", "")))
    return out


def minor(version: str) -> str:
    """The minor of a Flux version: ``v2.9.5`` -> ``2.9``."""
    return ".".join(str(version).lstrip("v").split(".")[:2])


def operator_flux(data: Path, minor: str) -> str:
    """The newest Flux version of ``minor`` (``2.9``) the Flux Operator's
    data folder (its ``config/data``, its image's ``/data``) carries: what a
    FluxInstance asking for ``2.9.x`` installs."""
    found = []
    for folder in (data / "flux-images").glob(f"v{minor}.*"):
        parts = folder.name[1:].split(".")
        if len(parts) == 3 and all(p.isdigit() for p in parts):
            found.append((tuple(int(p) for p in parts), folder.name))
    if not found:
        raise gomod.BuildError(f"the Flux Operator's {data}/flux-images holds no Flux {minor}.x")
    return max(found)[1]


def operator_images(data: Path, flux: str) -> dict[str, tuple[str, str]]:
    """component -> (tag, digest) the Flux Operator installs for Flux
    ``flux`` (``v2.9.4``), from its upstream image list."""
    listed = yamlload.load((data / "flux-images" / flux / "upstream-alpine.yaml").read_text(encoding="utf-8"))
    return {image["name"].rsplit("/", 1)[-1]: (str(image["newTag"]), str(image.get("digest", "")))
            for image in (listed or {}).get("images") or []}


def installed_by_operator(module: str, version: str, minor: str) -> dict[str, str]:
    """component -> version the Flux Operator ``module@version`` installs for
    the newest Flux of ``minor`` it carries, read from its module's
    ``config/data`` and remembered in the tool cache like ``bundled``."""
    memo = cache.tools_root() / ".components" / f"flux-operator-{version}-flux-{minor}.json"
    try:
        return json.loads(memo.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    data = gomod.download(module, version) / "config" / "data"
    flux = operator_flux(data, minor)
    versions = {name: tag for name, (tag, _digest) in operator_images(data, flux).items()}
    if not versions:
        raise gomod.BuildError(f"{module}@{version}: config/data/flux-images/{flux} lists no image")
    memo.parent.mkdir(parents=True, exist_ok=True)
    memo.write_text(json.dumps(versions, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return versions
