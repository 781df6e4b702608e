"""Modules whose go.mod replaces its own submodules with local directories
(k8s.io/kubernetes, the etcd server), which ``go install`` refuses. A small
wrapper module requires the module and replaces each of those submodules
with its published version."""

from __future__ import annotations

from .. import gomod
from ..recipes import Build, Tool
from . import gobuild


def build(tool: Tool, b: Build) -> dict:
    source = gomod.download(tool.module, tool.version)
    replaced = gomod.local_replaces(source / "go.mod")
    published = tool.local_replaces or tool.version
    lines = [f"module gitops-whitepaper.local/build/{tool.name}", "", f"go {gomod.go_directive(source / 'go.mod')}",
             "", f"require {tool.module} {tool.version}", ""]
    if replaced:
        lines += ["replace (", *(f"\t{path} => {path} {published}" for path in replaced), ")", ""]
    (b.work / "go.mod").write_text("\n".join(lines), encoding="utf-8")
    imports = "\n".join(f'\t_ "{full(tool, p)}"' for p in tool.packages)
    (b.work / "tools.go").write_text(f"//go:build tools\n\npackage tools\n\nimport (\n{imports}\n)\n", encoding="utf-8")
    gomod.run([gomod.go(), "mod", "tidy"], cwd=b.work, what=f"{tool.name}: go mod tidy of the wrapper module", log=b.log)
    gobuild.build(tool, b.work, b.out, [full(tool, p) for p in tool.packages], b.log)
    return {"source": f"{tool.module}@{tool.version} through a wrapper module"
                      + (f" ({len(replaced)} local replaces -> {published})" if replaced else "")}


def full(tool: Tool, package: str) -> str:
    return tool.module if package in (".", tool.module) else f"{tool.module}/{package.removeprefix('./')}"
