"""One recipe per kind of build (versions.yaml ``tools.<name>.build``).

Every recipe gets the tool, a scratch ``out`` folder whose ``bin/`` receives
the binaries, a ``work`` folder for sources, and a log file; it returns what
to record about the build. None of them edits the module cache or the
project's tree.

- ``go-install``: ``go install PACKAGE@VERSION`` (kustomize, kind, kwok,
  the registry, helm).
- ``go-wrapper``: modules whose go.mod replaces its own submodules with
  local directories (k8s.io/kubernetes, the etcd server), which ``go install``
  refuses. A small wrapper module requires the module and replaces each of
  those submodules with its published version.
- ``flux-controller``: a writable copy of the controller's module, with its
  ``api`` submodule (which module zips leave out) fetched into ``./api``.
- ``flux-cli``: a writable copy of flux2, whose ``cmd/flux/manifests`` (the
  install manifests the CLI embeds) is generated first, the way flux2's
  bundle script does, from each component's own ``config/``.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from . import gomod
from .components import ASSET, bundled
from .pins import Tool, replace_refused

LDFLAGS = "-s -w"


def _ldflags(tool: Tool) -> str:
    return " ".join([LDFLAGS, *(f"-X {var}={tool.version}" for var in tool.version_ldflags)])


def go_install(tool: Tool, out: Path, work: Path, log: Path, root: Path) -> dict:
    for package in tool.packages:
        gomod.run([gomod.go(), "install", "-ldflags", _ldflags(tool), f"{package}@{tool.version}"],
                  cwd=work, what=f"go install {package}@{tool.version}", extra_env={"GOBIN": str(out / "bin")},
                  log=log)
    return {"source": f"go install {', '.join(tool.packages)} @ {tool.version}"}


def go_wrapper(tool: Tool, out: Path, work: Path, log: Path, root: Path) -> dict:
    source = gomod.download(tool.module, tool.version)
    replaced = gomod.local_replaces(source / "go.mod")
    published = tool.local_replaces or tool.version
    lines = [f"module gitops-whitepaper.local/build/{tool.name}", "", f"go {gomod.go_directive(source / 'go.mod')}",
             "", f"require {tool.module} {tool.version}", ""]
    if replaced:
        lines += ["replace (", *(f"\t{path} => {path} {published}" for path in replaced), ")", ""]
    (work / "go.mod").write_text("\n".join(lines), encoding="utf-8")
    imports = "\n".join(f'\t_ "{_full(tool, p)}"' for p in tool.packages)
    (work / "tools.go").write_text(f"//go:build tools\n\npackage tools\n\nimport (\n{imports}\n)\n", encoding="utf-8")
    gomod.run([gomod.go(), "mod", "tidy"], cwd=work, what=f"{tool.name}: go mod tidy of the wrapper module", log=log)
    _build(tool, work, out, [_full(tool, p) for p in tool.packages], log)
    return {"source": f"{tool.module}@{tool.version} through a wrapper module"
                      + (f" ({len(replaced)} local replaces -> {published})" if replaced else "")}


def _full(tool: Tool, package: str) -> str:
    return tool.module if package in (".", tool.module) else f"{tool.module}/{package.removeprefix('./')}"


def _build(tool: Tool, cwd: Path, out: Path, packages: list[str], log: Path) -> None:
    """One ``go build`` for all of a tool's binaries (they share compiled
    packages); a single package is written under the tool's binary name."""
    target = str(out / "bin" / tool.binaries[0]) if len(packages) == 1 else str(out / "bin") + "/"
    gomod.run([gomod.go(), "build", "-ldflags", _ldflags(tool), "-o", target, *packages], cwd=cwd,
              what=f"go build of {tool.name} {tool.version}", log=log)


def _apply_refused_replaces(module_dir: Path, log: Path, root: Path) -> list[str]:
    """Replace dependencies the proxy refuses (versions.yaml
    ``flux.replace_refused``) where this module requires exactly that version."""
    go_mod = (module_dir / "go.mod").read_text(encoding="utf-8")
    done = []
    for module, spec in replace_refused(root).items():
        if re.search(rf"^\s*(require\s+)?{re.escape(module)}\s+{re.escape(str(spec['refused']))}\b", go_mod, re.M):
            gomod.run([gomod.go(), "mod", "edit", f"-replace={module}={module}@{spec['with']}"], cwd=module_dir,
                      what=f"replace {module}", log=log)
            done.append(f"{module} {spec['refused']} -> {spec['with']}")
    return done


def flux_controller(tool: Tool, out: Path, work: Path, log: Path, root: Path) -> dict:
    source = gomod.download(tool.module, tool.version)
    module_dir = gomod.writable_copy(source, work / tool.name)
    api = module_dir / "api"
    if f"{tool.module}/api" in gomod.local_replaces(module_dir / "go.mod") and not (api / "go.mod").exists():
        shutil.rmtree(api, ignore_errors=True)
        gomod.writable_copy(gomod.download(f"{tool.module}/api", tool.version), api)
    replaced = _apply_refused_replaces(module_dir, log, root)
    _build(tool, module_dir, out, ["."], log)
    component = bundled(root).get(tool.name)
    details = {"source": f"{tool.module}@{tool.version} (writable copy, api submodule fetched into ./api)"}
    if replaced:
        details["replaced"] = replaced
    if component and component.built != component.bundled:
        details["instead_of"] = f"{component.bundled}: {component.why}"
    return details


def flux_cli(tool: Tool, out: Path, work: Path, log: Path, root: Path) -> dict:
    from .install import find_binary

    kustomize = find_binary("kustomize", root)
    if kustomize is None:
        raise gomod.BuildError("the flux CLI's embedded manifests are made with kustomize: build kustomize first")
    source = gomod.download(tool.module, tool.version)
    flux2 = gomod.writable_copy(source, work / "flux2")
    components = bundled(root)
    used = {}
    for base in sorted((flux2 / "manifests" / "bases").iterdir()):
        kustomization = base / "kustomization.yaml"
        text = kustomization.read_text(encoding="utf-8")
        names = {m.group("repo") for m in ASSET.finditer(text)}
        for name in names:
            component = components[name]
            config = _component_config(component, work, kustomize, log)
            for kind in ("crds", "deployment"):
                built = gomod.run([kustomize, "build", str(config / ("crd" if kind == "crds" else "manager"))],
                                  cwd=work, what=f"kustomize build of {name}'s config ({kind})", log=log)
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
                          log=log)
        (manifests / f"{folder.name}.yaml").write_text(built, encoding="utf-8")
    replaced = _apply_refused_replaces(flux2, log, root)
    version = tool.version.lstrip("v")
    gomod.run([gomod.go(), "build", "-ldflags", f"{LDFLAGS} -X main.VERSION={version}", "-o",
               str(out / "bin" / "flux"), "./cmd/flux"], cwd=flux2, what=f"go build of the flux CLI {tool.version}",
              log=log)
    details = {"source": f"{tool.module}@{tool.version}, embedded manifests built from the components' config/",
               "components": used}
    instead = {c.name: f"{c.built} instead of {c.bundled}: {c.why}" for c in components.values() if c.built != c.bundled}
    if instead:
        details["instead_of"] = instead
    if replaced:
        details["replaced"] = replaced
    return details


def _component_config(component, work: Path, kustomize: str, log: Path) -> Path:
    """A writable copy of the component's ``config/``, its manager image set to
    the released image of the version built (as the component's release does)."""
    source = gomod.download(component.module, component.built, extra_env=_sumdb_env(component.module))
    target = work / "components" / component.name
    if not target.exists():
        gomod.writable_copy(source / "config", target)
        gomod.run([kustomize, "edit", "set", "image",
                   f"fluxcd/{component.name}=ghcr.io/fluxcd/{component.name}:{component.built}"],
                  cwd=target / "manager", what=f"set {component.name}'s image", log=log)
    return target


def _sumdb_env(module: str) -> dict[str, str]:
    """GONOSUMDB for a module versions.yaml ``flux.not_in_checksum_db`` names:
    one the proxy serves at a version the public checksum database lacks."""
    from .pins import versions

    skip = (versions().get("flux") or {}).get("not_in_checksum_db") or []
    return {"GONOSUMDB": ",".join(skip)} if module in skip else {}


def flux_operator(tool: Tool, out: Path, work: Path, log: Path, root: Path) -> dict:
    """The Flux Operator as its release builds it, from a writable copy of
    its module: ``GOFIPS140=latest`` (the operator refuses to start outside
    FIPS 140-3 mode), and a one-page stand-in for the web UI's assets
    (``web/dist``, which its release makes with npm and the module zip leaves
    out; the tier runs the operator with the UI off). Beside the binary go
    what its image and release carry: the Flux manifests it installs from
    (``config/data``, the image's ``/data``) and ``install.yaml``
    (``kustomize build config/default``, the release asset)."""
    from .install import find_binary

    kustomize = find_binary("kustomize", root)
    if kustomize is None:
        raise gomod.BuildError("the Flux Operator's install.yaml is made with kustomize: build kustomize first")
    source = gomod.download(tool.module, tool.version)
    module_dir = gomod.writable_copy(source, work / tool.name)
    dist = module_dir / "web" / "dist"
    if not dist.exists():
        dist.mkdir(parents=True)
        (dist / "index.html").write_text("<!doctype html><title>Flux Operator</title>"
                                         "<p>The web UI is not part of this build.</p>\n", encoding="utf-8")
    replaced = []
    for module, spec in (tool.extra.get("replace_refused") or {}).items():
        gomod.run([gomod.go(), "mod", "edit", f"-replace={module}={module}@{spec['with']}"], cwd=module_dir,
                  what=f"replace {module}", log=log)
        replaced.append(f"{module} {spec['refused']} -> {spec['with']}")
    gomod.run([gomod.go(), "build", "-ldflags", f"{LDFLAGS} -X main.VERSION={tool.version.lstrip('v')}", "-o",
               str(out / "bin" / "flux-operator"), "./cmd/operator"], cwd=module_dir,
              what=f"go build of the Flux Operator {tool.version}", extra_env={"GOFIPS140": "latest"}, log=log)
    shutil.copytree(module_dir / "config" / "data", out / "data")
    built = gomod.run([kustomize, "build", str(module_dir / "config" / "default")], cwd=module_dir,
                      what="kustomize build config/default (install.yaml)", log=log)
    (out / "install.yaml").write_text(built, encoding="utf-8")
    details = {"source": f"{tool.module}@{tool.version} (writable copy, GOFIPS140=latest, web UI left out), "
                         "with its config/data and install.yaml",
               "flux_versions": sorted(p.name for p in (out / "data" / "flux").iterdir())}
    if replaced:
        details["replaced"] = replaced
    return details


RECIPES = {
    "go-install": go_install,
    "go-wrapper": go_wrapper,
    "flux-controller": flux_controller,
    "flux-cli": flux_cli,
    "flux-operator": flux_operator,
}


def recipe(tool: Tool):
    try:
        return RECIPES[tool.build]
    except KeyError:
        raise gomod.BuildError(f"versions.yaml tools.{tool.name}.build: unknown recipe {tool.build!r}; "
                               f"known: {', '.join(RECIPES)}") from None

