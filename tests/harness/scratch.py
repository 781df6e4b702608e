"""Scratch copies of the working tree, so that nothing the harness runs can
touch the real one.

A snapshot holds every tracked and untracked-but-not-ignored file as it is on
disk now (uncommitted changes included) and a copy of ``.git``, so scripts
that call git see the same history and the same uncommitted changes.

Copying ``.git`` would be most of a snapshot's cost: its object store is one
folder per object prefix. The snapshot's ``.git`` borrows the real objects
through git's alternates instead (``copy_git_dir``); everything else (index,
refs, config, HEAD, logs) is copied.

A linked worktree (``git worktree add``) has a ``.git`` file that names its
own folder in the main repository, which shares the repository's refs. The
snapshot never points there: its ``.git`` is a copy of that folder merged
with the shared one (``copy_worktree_git``), so a branch made or a commit
done in the snapshot stays in the snapshot, as with an ordinary checkout.
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
    elif git.is_file():  # a linked worktree: a repository of its own, never the shared one
        copy_worktree_git(git, dest / ".git")
    return dest


WORKTREE_OWN = ("HEAD", "ORIG_HEAD", "index", "logs/HEAD")


def worktree_dirs(git_file: Path) -> tuple[Path, Path]:
    """(the worktree's own folder, the repository's common folder) that a
    linked worktree's ``.git`` file leads to."""
    text = git_file.read_text(encoding="utf-8").strip()
    if not text.startswith("gitdir:"):
        raise ValueError(f"{git_file}: not a `gitdir:` file")
    own = Path(text.split(":", 1)[1].strip())
    own = own if own.is_absolute() else (git_file.parent / own)
    common_file = own / "commondir"
    common = own
    if common_file.is_file():
        named = Path(common_file.read_text(encoding="utf-8").strip())
        common = named if named.is_absolute() else own / named
    return own.resolve(), common.resolve()


def copy_worktree_git(git_file: Path, dest: Path) -> None:
    """A ``.git`` folder for a snapshot of a linked worktree: the shared
    repository's refs, config and logs (without the other worktrees'
    folders), with this worktree's HEAD, index and reflog on top; objects
    are borrowed, as ``copy_git_dir`` does."""
    own, common = worktree_dirs(git_file)
    copy_git_dir(common, dest, skip=("worktrees",))
    for name in WORKTREE_OWN:
        source = own / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def copy_git_dir(git: Path, dest: Path, skip: tuple[str, ...] = ()) -> None:
    """Copy a ``.git`` folder without its object store, leaving out lock
    files (a commit in progress in the real tree).

    The copy borrows the objects instead: its ``objects/info/alternates``
    names the real ``objects`` folder, where git looks up every object it
    does not have itself. Git never writes into an alternate (new objects go
    to the copy's own store) and never deletes from one, so the real
    repository is only read; the copy costs a few dozen files instead of one
    folder per object prefix. Top-level folders named in ``skip`` are left
    out."""
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
