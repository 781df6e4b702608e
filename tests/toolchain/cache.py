"""The per-user cache of built tools, keyed by tool and version.

    ~/.cache/gitops-whitepaper/tools/<tool>/<version>/bin/<binary>
    ~/.cache/gitops-whitepaper/tools/<tool>/<version>/tool.json

A fresh clone, CI's clone and the next session on the same machine all find
what was built once. ``$GITOPS_WHITEPAPER_CACHE`` moves the whole cache
(default ``$XDG_CACHE_HOME/gitops-whitepaper``, else ``~/.cache/...``). An
entry is complete only once ``tool.json`` is written, as the last step of a
build into a scratch folder that is then renamed into place, so an
interrupted build never leaves a half-built tool that looks whole.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from .recipes import Tool

RECORD = "tool.json"


def root() -> Path:
    explicit = os.environ.get("GITOPS_WHITEPAPER_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gitops-whitepaper"


def tools_root() -> Path:
    return root() / "tools"


def entry(tool: Tool) -> Path:
    return tools_root() / tool.name / tool.version


def binary(tool: Tool, name: str) -> Path:
    return entry(tool) / "bin" / name


def record(tool: Tool) -> dict | None:
    """What was recorded when ``tool`` was built, or None if it is not cached
    (or its entry lacks a binary it should have)."""
    path = entry(tool) / RECORD
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for name in tool.binaries:
        exe = binary(tool, name)
        if not exe.is_file() or (not name.endswith(".tar") and not os.access(exe, os.X_OK)):
            return None
    return data


def scratch(tool: Tool) -> Path:
    """A new, empty folder to build ``tool`` into (beside its entry, so the
    final rename stays on one file system)."""
    parent = tools_root() / tool.name
    parent.mkdir(parents=True, exist_ok=True)
    path = parent / f".{tool.version}.building-{os.getpid()}-{int(time.time())}"
    path.mkdir()
    (path / "bin").mkdir()
    return path


def commit(tool: Tool, built: Path, details: dict) -> Path:
    """Move a finished build into place and write its record last."""
    final = entry(tool)
    if final.exists():
        shutil.rmtree(final)
    (built / RECORD).write_text(json.dumps(details, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    built.rename(final)
    return final


def discard_stale_scratch() -> None:
    """Remove scratch folders of builds whose process is gone."""
    base = tools_root()
    if not base.is_dir():
        return
    for folder in base.glob("*/.*.building-*"):
        try:
            pid = int(folder.name.split(".building-")[1].split("-")[0])
            os.kill(pid, 0)
        except (ValueError, IndexError, ProcessLookupError):
            shutil.rmtree(folder, ignore_errors=True)
        except PermissionError:
            pass
