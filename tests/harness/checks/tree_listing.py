"""Directory listings a page draws (``├── name``) against the repository.

A ``text`` block marked ``<!-- test: tree -->`` is a listing of the
repository, its first line the root (``.``). Every entry must exist: a name
ending in ``/`` as a directory, a name with ``*`` as a pattern (it may match
nothing, but its parent must exist). With ``complete``, a directory whose
children the listing shows must show all of them (README.md files aside:
every directory has one), so a file added to the tree fails the page until the
listing mentions it.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

from harness import selection
from harness.model import Block, Context, Finding, Outcome

CHECK = "tree-listing"
# An entry: the drawing, the connector, the name, then an optional # comment.
ENTRY = re.compile(r"^(?P<indent>(?:[│ ] {3})*)(?:├── |└── )(?P<name>[^\s#]+)")
UNLISTED = {"README.md"}


def run(ctx: Context) -> list[Finding]:
    findings: list[Finding] = []
    for block in selection.select(CHECK, ctx.blocks):  # the `test: tree` blocks
        findings.extend(check_listing(ctx.root, block))
    return findings


def entries(block: Block) -> list[tuple[int, str]]:
    """(line offset, path relative to the root) of every entry in the listing."""
    found: list[tuple[int, str]] = []
    parents: list[str] = []
    for offset, line in enumerate(block.text.splitlines()):
        match = ENTRY.match(line)
        if not match:
            continue
        depth = len(match.group("indent")) // 4
        name = match.group("name")
        parents = parents[:depth]
        path = "/".join([*[p.rstrip("/") for p in parents], name])
        found.append((offset, path))
        parents.append(name)
    return found


def check_listing(root: Path, block: Block) -> list[Finding]:
    listed = entries(block)
    if not listed:
        return [Finding(CHECK, Outcome.FAILED, block.location(), "a `test: tree` block lists no entry "
                        "(lines like `├── name/`): draw the listing or drop the comment", block)]
    failures: list[Finding] = []
    for offset, path in listed:
        problem = missing(root, path)
        if problem:
            failures.append(Finding(CHECK, Outcome.FAILED, block.location(offset),
                                    f"{problem}: update the listing or the tree", block))
    if block.options.get("complete") == "true":
        failures.extend(unlisted(root, block, listed))
    if failures:
        return failures
    return [Finding(CHECK, Outcome.PASSED, block.location(), f"{len(listed)} entries exist", block)]


def missing(root: Path, path: str) -> str | None:
    target = root / path.rstrip("/")
    if "*" in path:
        parent = target.parent
        return None if parent.is_dir() else f"the listing shows {path}, but {parent.relative_to(root)}/ does not exist"
    if path.endswith("/"):
        return None if target.is_dir() else f"the listing shows the directory {path}, which does not exist"
    return None if target.is_file() else f"the listing shows the file {path}, which does not exist"


def unlisted(root: Path, block: Block, listed: list[tuple[int, str]]) -> list[Finding]:
    """Children of listed directories that the listing does not show."""
    shown: dict[str, list[str]] = {}
    where: dict[str, int] = {}
    for offset, path in listed:
        parent, _, name = path.rstrip("/").rpartition("/")
        shown.setdefault(parent, []).append(name)
        where[path.rstrip("/")] = offset
    failures = []
    for parent, names in shown.items():
        directory = root / parent if parent else root
        if not parent:
            continue  # the root holds the project's own files too; list only what the page is about
        for child in sorted(p.name for p in directory.iterdir() if not p.name.startswith(".")):
            if child in UNLISTED or any(fnmatch.fnmatchcase(child, n) for n in names):
                continue
            failures.append(Finding(
                CHECK, Outcome.FAILED, block.location(where.get(parent, 0)),
                f"{parent}/{child} exists but the listing (marked complete) does not show it: "
                "add it under " + parent + "/", block))
    return failures
