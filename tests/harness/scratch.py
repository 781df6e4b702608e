"""Scratch copies of the working tree, so that nothing the harness runs can
touch the real one.

A snapshot holds every tracked and untracked-but-not-ignored file as it is on
disk now (uncommitted changes included) and a copy of ``.git``, so scripts
that call git see the same history and the same uncommitted changes.

Copying ``.git`` would be most of a snapshot's cost: its object store is one
folder per object prefix. The snapshot's ``.git`` borrows the real objects
through git's alternates instead (``copy_git_dir``); everything else (index,
refs, config, HEAD, logs) is copied.
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


def snapshot(root: Path, dest: Path, link: bool = False) -> Path:
    """Copy the working tree of ``root`` into ``dest`` (created; must not
    exist or be empty) and return ``dest``. ``root`` is only read; a snapshot
    can itself be snapshotted (the mutation tests copy one base per test).

    ``link=True`` hard-links the files instead of copying them (where the
    filesystem allows): for a copy of a scratch tree whose files are only
    ever replaced (removed and written anew), never changed in place, since a
    change in place would show in both trees. Never use it on the real tree."""
    root, dest = Path(root).resolve(), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    made = {dest}
    for name in tree_files(root):
        source = root / name
        target = dest / name
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        try:
            if source.is_symlink():
                os.symlink(os.readlink(source), target)
            elif source.is_file():
                if link:
                    try:
                        os.link(source, target)
                        continue
                    except OSError:
                        pass  # another filesystem: copy
                shutil.copy2(source, target)
        except FileNotFoundError:
            continue  # deleted in the working tree (not yet committed, or just now)
    git = root / ".git"
    if git.is_dir():
        copy_git_dir(git, dest / ".git")
    elif git.is_file():  # a linked worktree (git worktree add)
        copy_worktree_git(git, dest / ".git")
    return dest


def copy_worktree_git(git_file: Path, dest: Path) -> None:
    """A standalone ``.git`` for a snapshot of a linked worktree.

    A worktree's ``.git`` is a file naming its folder inside the main
    repository (HEAD, index), which shares refs, config and objects with
    every other worktree. A snapshot that kept that file would share them
    too: a script that switches or creates a branch in the copy would switch
    the real worktree and create the branch in the real repository. So the
    copy gets the shared part (``copy_git_dir`` of the common folder, less
    the other worktrees' folders) with this worktree's own HEAD, index and
    logs on top: the same history and state, and nothing shared that git
    writes to."""
    text = git_file.read_text(encoding="utf-8").strip()
    gitdir = Path(text.split(":", 1)[1].strip()) if text.startswith("gitdir:") else None
    if gitdir is not None and not gitdir.is_absolute():
        gitdir = (git_file.parent / gitdir).resolve()
    if gitdir is None or not gitdir.is_dir():
        return  # not a worktree git knows about: the copy has no repository
    common_file = gitdir / "commondir"
    common = (gitdir / common_file.read_text(encoding="utf-8").strip()).resolve() if common_file.is_file() \
        else gitdir.parent.parent
    copy_git_dir(common, dest, skip=("worktrees",))
    for dirpath, _dirnames, filenames in os.walk(gitdir):
        rel = os.path.relpath(dirpath, gitdir)
        for name in filenames:
            if rel == "." and name in ("commondir", "gitdir", "locked"):
                continue
            if name.endswith(".lock"):
                continue
            (dest / rel).mkdir(parents=True, exist_ok=True)
            try:
                shutil.copy2(os.path.join(dirpath, name), dest / rel / name)
            except FileNotFoundError:
                continue


def copy_git_dir(git: Path, dest: Path, skip: tuple[str, ...] = ()) -> None:
    """Copy a ``.git`` folder without its object store, leaving out lock
    files (a commit in progress in the real tree).

    The copy borrows the objects instead: its ``objects/info/alternates``
    names the real ``objects`` folder, where git looks up every object it
    does not have itself. Git never writes into an alternate (new objects go
    to the copy's own store) and never deletes from one, so the real
    repository is only read; the copy costs a few dozen files instead of one
    folder per object prefix."""
    objects = (git / "objects").resolve()
    for dirpath, dirnames, filenames in os.walk(git):
        rel = os.path.relpath(dirpath, git)
        if rel == "objects" or rel.startswith("objects" + os.sep):
            dirnames[:] = []
            continue
        if rel == ".":
            dirnames[:] = [d for d in dirnames if d not in skip]
        target_dir = dest / rel
        target_dir.mkdir(parents=True, exist_ok=True)
        for name in [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            dirnames.remove(name)
            os.symlink(os.readlink(os.path.join(dirpath, name)), target_dir / name)
        for name in filenames:
            if name.endswith(".lock"):
                continue
            source, target = os.path.join(dirpath, name), target_dir / name
            try:
                if os.path.islink(source):
                    os.symlink(os.readlink(source), target)
                else:
                    shutil.copy2(source, target)
            except FileNotFoundError:
                continue  # removed while we copied
    (dest / "objects" / "pack").mkdir(parents=True, exist_ok=True)
    (dest / "objects" / "info").mkdir(parents=True, exist_ok=True)
    (dest / "objects" / "info" / "alternates").write_text(f"{objects}\n", encoding="utf-8")
