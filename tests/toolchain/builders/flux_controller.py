"""A Flux controller: a writable copy of its module, with its ``api``
submodule (which module zips leave out) fetched into ``./api``."""

from __future__ import annotations

import shutil

from .. import gomod
from ..recipes import Build, Tool
from . import gobuild


def build(tool: Tool, b: Build) -> dict:
    source = gomod.download(tool.module, tool.version)
    module_dir = gomod.writable_copy(source, b.work / tool.name)
    api = module_dir / "api"
    if f"{tool.module}/api" in gomod.local_replaces(module_dir / "go.mod") and not (api / "go.mod").exists():
        shutil.rmtree(api, ignore_errors=True)
        gomod.writable_copy(gomod.download(f"{tool.module}/api", tool.version), api)
    replaced = gobuild.apply_refused_replaces(module_dir, b.log, b.settings)
    gobuild.build(tool, module_dir, b.out, ["."], b.log)
    component = gobuild.flux_components(b.settings).get(tool.name)
    details = {"source": f"{tool.module}@{tool.version} (writable copy, api submodule fetched into ./api)"}
    if replaced:
        details["replaced"] = replaced
    if component and component.built != component.bundled:
        details["instead_of"] = f"{component.bundled}: {component.why}"
    return details
