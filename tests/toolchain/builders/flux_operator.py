"""The Flux Operator as its release builds it, from a writable copy of its
module: ``GOFIPS140=latest`` (the operator refuses to start outside FIPS
140-3 mode), and a one-page stand-in for the web UI's assets (``web/dist``,
which its release makes with npm and the module zip leaves out; the tier runs
the operator with the UI off). Beside the binary go what its image and
release carry: the Flux manifests it installs from (``config/data``, the
image's ``/data``) and ``install.yaml`` (``kustomize build config/default``,
the release asset)."""

from __future__ import annotations

import shutil

from .. import gomod
from ..recipes import Build, Tool
from .gobuild import LDFLAGS


def build(tool: Tool, b: Build) -> dict:
    kustomize = b.need("kustomize", "kustomize")
    source = gomod.download(tool.module, tool.version)
    module_dir = gomod.writable_copy(source, b.work / tool.name)
    dist = module_dir / "web" / "dist"
    if not dist.exists():
        dist.mkdir(parents=True)
        (dist / "index.html").write_text("<!doctype html><title>Flux Operator</title>"
                                         "<p>The web UI is not part of this build.</p>\n", encoding="utf-8")
    replaced = []
    for module, spec in (tool.extra.get("replace_refused") or {}).items():
        gomod.run([gomod.go(), "mod", "edit", f"-replace={module}={module}@{spec['with']}"], cwd=module_dir,
                  what=f"replace {module}", log=b.log)
        replaced.append(f"{module} {spec['refused']} -> {spec['with']}")
    gomod.run([gomod.go(), "build", "-ldflags", f"{LDFLAGS} -X main.VERSION={tool.version.lstrip('v')}", "-o",
               str(b.out / "bin" / "flux-operator"), "./cmd/operator"], cwd=module_dir,
              what=f"go build of the Flux Operator {tool.version}", extra_env={"GOFIPS140": "latest"}, log=b.log)
    shutil.copytree(module_dir / "config" / "data", b.out / "data")
    built = gomod.run([str(kustomize), "build", str(module_dir / "config" / "default")], cwd=module_dir,
                      what="kustomize build config/default (install.yaml)", log=b.log)
    (b.out / "install.yaml").write_text(built, encoding="utf-8")
    details = {"source": f"{tool.module}@{tool.version} (writable copy, GOFIPS140=latest, web UI left out), "
                         "with its config/data and install.yaml",
               "flux_versions": sorted(p.name for p in (b.out / "data" / "flux").iterdir())}
    if replaced:
        details["replaced"] = replaced
    return details
