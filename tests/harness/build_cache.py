"""A cache on disk for the output of tools that only read their input, keyed
by the exact content of that input.

``kustomize build DIR`` reads the kustomization in DIR, every file below DIR
and the bases it names, and writes YAML; nothing else changes its output but
the kustomize binary. The harness asks for the same builds in every pytest
worker, in every mutation test's copy of a tree that did not change there,
and in every run, so each answer is kept in ``.tools/cache/<tool>/``, named
by a hash of the binary (path, size, modification time), the directory, and
the path and bytes of every file it reads. A changed byte is a different
name; nothing is ever looked up by path or time alone. ``.tools/`` is
git-ignored (and ``git clean -fdX`` empties it); the cache holds at most
``LIMIT`` entries per tool, the oldest going first.

``counts()`` says how many answers came from the cache and how many were
computed, in this process; the benchmark prints them.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections import Counter
from pathlib import Path

from harness.model import PROJECT_ROOT

CACHE_DIR = ".tools/cache"
LIMIT = 2000
_counts: Counter[str] = Counter()


def key(tool: str, binary: str, parts: list[tuple[str, bytes]]) -> str:
    """The name of an answer: the tool binary and every (name, content) the
    answer depends on, in order."""
    digest = hashlib.sha256()
    st = os.stat(binary)
    digest.update(f"{tool}\0{os.path.realpath(binary)}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    for name, content in parts:
        digest.update(name.encode() + b"\0" + str(len(content)).encode() + b"\0" + content)
    return digest.hexdigest()


def folder(tool: str, root: Path = PROJECT_ROOT) -> Path:
    return Path(root) / CACHE_DIR / tool


def get(tool: str, name: str) -> dict | None:
    path = folder(tool) / f"{name}.json"
    try:
        answer = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        _counts[f"{tool} computed"] += 1
        return None
    _counts[f"{tool} from cache"] += 1
    return answer


def put(tool: str, name: str, answer: dict) -> None:
    """Keep ``answer`` (written whole or not at all: a reader in another
    process sees the old state or the new file, never half of it)."""
    where = folder(tool)
    try:
        where.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=where, suffix=".partial", delete=False, encoding="utf-8") as out:
            json.dump(answer, out)
        os.replace(out.name, where / f"{name}.json")
        entries = list(where.glob("*.json"))
        if len(entries) > LIMIT:
            entries.sort(key=lambda p: p.stat().st_mtime)
            for old in entries[: len(entries) - LIMIT // 2]:
                old.unlink(missing_ok=True)
    except OSError:
        pass  # a cache that cannot be written only costs time


def counts() -> dict[str, int]:
    return dict(_counts)
