"""Scratch copies of the working tree, so that nothing the harness runs can
touch the real one.

A snapshot holds every tracked and untracked-but-not-ignored file as it is on
disk now (uncommitted changes included) and a copy of ``.git``, so scripts
that call git see the same history and the same uncommitted changes.

Copying ``.git`` would be most of a snapshot's cost: its object store is one
folder per object prefix. The snapshot's ``.git`` borrows the real objects
through git's alternates instead (``copy_git_dir``); everything else (index,
refs, config, HEAD, logs) is copied.

A linked worktree (``git worktree add``) has a ``.git`` *file* naming its
own folder inside the main repository's ``.git``, where its HEAD and index
live, beside the refs every worktree shares. Copying that file would let a
command in the snapshot (``git switch``, ``git commit``) move the real
worktree's branch; the snapshot gets a standalone ``.git`` instead, made
from the shared folder with this worktree's own files laid over it.
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
    elif git.is_file():  # a linked worktree: a standalone copy, never the shared folder
        copy_worktree_git_dir(root, dest / ".git")
    return dest


def copy_worktree_git_dir(root: Path, dest: Path) -> None:
    """A standalone ``.git`` for a snapshot of a linked worktree: the
    repository's common folder (refs, config, packed refs; objects borrowed)
    without the other worktrees' folders, then this worktree's own HEAD,
    index and logs over it."""
    def ask(flag: str) -> Path:
        out = subprocess.run(["git", "rev-parse", flag], cwd=root, check=True, capture_output=True, text=True)
        return (root / out.stdout.strip()).resolve()

    own, common = ask("--git-dir"), ask("--git-common-dir")
    copy_git_dir(common, dest, leave_out=("worktrees",))
    for dirpath, _dirnames, filenames in os.walk(own):
        rel = os.path.relpath(dirpath, own)
        for name in filenames:
            if name.endswith(".lock") or (rel == "." and name in ("gitdir", "commondir")):
                continue
            target = dest / rel / name
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                shutil.copy2(os.path.join(dirpath, name), target)
            except FileNotFoundError:
                continue


def copy_git_dir(git: Path, dest: Path, leave_out: tuple[str, ...] = ()) -> None:
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
            dirnames[:] = [d for d in dirnames if d not in leave_out]
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
