"""The flux CLI: a writable copy of flux2, whose ``cmd/flux/manifests`` (the
install manifests the CLI embeds) is generated first, the way flux2's bundle
script does, from each component's own ``config/``. Needs kustomize."""

from __future__ import annotations

import shutil
from pathlib import Path

from .. import gomod
from ..components import ASSET
from ..recipes import Build, Tool
from . import gobuild


def build(tool: Tool, b: Build) -> dict:
    kustomize = str(b.need("kustomize", "kustomize"))
    source = gomod.download(tool.module, tool.version)
    flux2 = gomod.writable_copy(source, b.work / "flux2")
    components = gobuild.flux_components(b.settings)
    used = {}
    for base in sorted((flux2 / "manifests" / "bases").iterdir()):
        kustomization = base / "kustomization.yaml"
        text = kustomization.read_text(encoding="utf-8")
        names = {m.group("repo") for m in ASSET.finditer(text)}
        for name in names:
            component = components[name]
            config = component_config(component, b, kustomize)
            for kind in ("crds", "deployment"):
                built = gomod.run([kustomize, "build", str(config / ("crd" if kind == "crds" else "manager"))],
                                  cwd=b.work, what=f"kustomize build of {name}'s config ({kind})", log=b.log)
                (base / f"{name}.{kind}.yaml").write_text(built, encoding="utf-8")
            used[name] = component.built
        text = ASSET.sub(lambda m: m.group("file"), text)
        kustomization.write_text(text, encoding="utf-8")
    manifests = flux2 / "cmd" / "flux" / "manifests"
    shutil.rmtree(manifests, ignore_errors=True)
    manifests.mkdir(parents=True)
    inputs = [*sorted(p for p in (flux2 / "manifests" / "bases").iterdir() if p.is_dir()),
              flux2 / "manifests" / "rbac", flux2 / "manifests" / "policies"]
    for folder in inputs:
        built = gomod.run([kustomize, "build", str(folder)], cwd=flux2, what=f"kustomize build manifests/{folder.name}",
                          log=b.log)
        (manifests / f"{folder.name}.yaml").write_text(built, encoding="utf-8")
    replaced = gobuild.apply_refused_replaces(flux2, b.log, b.settings)
    version = tool.version.lstrip("v")
    gomod.run([gomod.go(), "build", "-ldflags", f"{gobuild.LDFLAGS} -X main.VERSION={version}", "-o",
               str(b.out / "bin" / "flux"), "./cmd/flux"], cwd=flux2, what=f"go build of the flux CLI {tool.version}",
              log=b.log)
    details = {"source": f"{tool.module}@{tool.version}, embedded manifests built from the components' config/",
               "components": used}
    instead = {c.name: f"{c.built} instead of {c.bundled}: {c.why}" for c in components.values() if c.built != c.bundled}
    if instead:
        details["instead_of"] = instead
    if replaced:
        details["replaced"] = replaced
    return details


def component_config(component, b: Build, kustomize: str) -> Path:
    """A writable copy of the component's ``config/``, its manager image set to
    the released image of the version built (as the component's release does)."""
    source = gomod.download(component.module, component.built,
                            extra_env=gobuild.sumdb_env(component.module, b.settings))
    target = b.work / "components" / component.name
    if not target.exists():
        gomod.writable_copy(source / "config", target)
        gomod.run([kustomize, "edit", "set", "image",
                   f"fluxcd/{component.name}=ghcr.io/fluxcd/{component.name}:{component.built}"],
                  cwd=target / "manager", what=f"set {component.name}'s image", log=b.log)
    return target
