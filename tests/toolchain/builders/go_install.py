"""``go install PACKAGE@VERSION`` (kustomize, kind, kwok, the registry, helm,
CoreDNS, podinfo, ...)."""

from __future__ import annotations

from .. import gomod
from ..recipes import Build, Tool
from .gobuild import ldflags


def build(tool: Tool, b: Build) -> dict:
    for package in tool.packages:
        gomod.run([gomod.go(), "install", "-ldflags", ldflags(tool), f"{package}@{tool.version}"],
                  cwd=b.work, what=f"go install {package}@{tool.version}", extra_env={"GOBIN": str(b.out / "bin")},
                  log=b.log)
    return {"source": f"go install {', '.join(tool.packages)} @ {tool.version}"}
