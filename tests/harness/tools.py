"""The CLI tools the checks run: where to find them, and why one is missing.

The tools are built from source by the toolchain (``tests/toolchain``,
``nox -s tools``) at the versions ``versions.yaml`` pins, into a per-user
cache every clone shares. A tool is looked up there first, then in the
project's ``.tools/bin``, then on ``PATH``. A check that needs a missing tool
is skipped with ``missing_reason(name)``; it never passes silently.
"""

from __future__ import annotations

from pathlib import Path

from harness.model import PROJECT_ROOT
from toolchain import cache, gomod, install, pins as toolchain_pins

TOOLS_DIR = install.LOCAL_BIN


def pins(root: Path = PROJECT_ROOT) -> dict[str, dict[str, str]]:
    """Every binary the toolchain provides -> {tool, module, version}."""
    out = {}
    for tool in toolchain_pins.tools(Path(root)).values():
        for binary in tool.binaries:
            out[binary] = {"tool": tool.name, "module": tool.module, "version": tool.version}
    return out


def find(name: str, root: Path = PROJECT_ROOT) -> str | None:
    """The path of ``name``: the toolchain cache, ``.tools/bin``, ``PATH``."""
    return install.find_binary(name, Path(root))


def bin_dirs(root: Path = PROJECT_ROOT) -> list[str]:
    """The cache folders of every tool built so far, for a PATH: blocks the
    harness runs find the pinned tools by name."""
    out = []
    for tool in toolchain_pins.tools(Path(root)).values():
        if cache.record(tool) is not None:
            out.append(str(cache.entry(tool) / "bin"))
    return out


def missing_reason(name: str, root: Path = PROJECT_ROOT) -> str:
    """Why a check that needs ``name`` is skipped, and what to do about it."""
    where = f"{name} not found in the tool cache ({cache.tools_root()}), {TOOLS_DIR} or PATH"
    tool = toolchain_pins.tool_for_binary(name, Path(root))
    if tool is None:
        return f"{where}; it is not pinned in versions.yaml `tools:`"
    try:
        gomod.go()
    except gomod.BuildError:
        return f"{where}; `nox -s tools` builds it from source, and needs Go"
    return f"{where}; run `nox -s tools -- {tool.name}` to build the pinned {tool.version}"
