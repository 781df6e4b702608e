"""Scratch copies of the working tree, so that nothing the harness runs can
touch the real one.

A snapshot holds every tracked and untracked-but-not-ignored file as it is on
disk now (uncommitted changes included) and a copy of ``.git``, so scripts
that call git see the same history and the same uncommitted changes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

# Never copied when the tree is not a git checkout.
SKIP_DIRS = {".git", ".nox", ".tools", ".venv", "site", "__pycache__", ".pytest_cache", "artifacts"}


def tree_files(root: Path) -> list[str]:
    """Files of the working tree, relative to ``root``: what git tracks or
    would track (ignored files left out)."""
    root = Path(root)
    if (root / ".git").exists():
        out = subprocess.run(
            ["git", "ls-files", "-z", "-co", "--exclude-standard", "--deduplicate"],
            cwd=root,
            check=True,
            capture_output=True,
        ).stdout
        return [name for name in out.decode().split("\0") if name]
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
        files.extend(os.path.relpath(os.path.join(dirpath, f), root) for f in filenames)
    return sorted(files)


def snapshot(root: Path, dest: Path) -> Path:
    """Copy the working tree of ``root`` into ``dest`` (created; must not
    exist or be empty) and return ``dest``. ``root`` is only read."""
    root, dest = Path(root).resolve(), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in tree_files(root):
        source = root / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the working tree, not yet committed
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            os.symlink(os.readlink(source), target)
        elif source.is_file():
            shutil.copy2(source, target)
    git = root / ".git"
    if git.is_dir():
        shutil.copytree(git, dest / ".git", symlinks=True, ignore=shutil.ignore_patterns("*.lock"))
    elif git.is_file():  # a worktree: point at the same repository
        shutil.copy2(git, dest / ".git")
    return dest
