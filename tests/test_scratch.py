"""Scratch snapshots are the harness's promise that nothing it runs touches
the real tree: git commands run in a snapshot must not move the real
checkout's branch, index or refs, whether it is a plain clone or a linked
worktree (``git worktree add``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness import scratch


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
                               "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org",
                               "PATH": "/usr/bin:/bin", "HOME": str(cwd)}).stdout.strip()


def state(checkout: Path) -> tuple[str, str, str, str]:
    return (git(checkout, "symbolic-ref", "HEAD"), git(checkout, "rev-parse", "HEAD"),
            git(checkout, "for-each-ref", "--format=%(refname) %(objectname)"), git(checkout, "status", "--porcelain"))


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    main = tmp_path / "main"
    main.mkdir()
    git(main, "init", "--quiet", "--initial-branch=main")
    (main / "file.txt").write_text("one\n")
    git(main, "add", "file.txt")
    git(main, "commit", "--quiet", "-m", "first")
    return main


@pytest.mark.parametrize("layout", ["clone", "worktree"])
def test_git_in_a_snapshot_leaves_the_real_checkout_alone(repository: Path, tmp_path: Path, layout: str) -> None:
    checkout = repository
    if layout == "worktree":
        checkout = tmp_path / "linked"
        git(repository, "worktree", "add", "--quiet", "-b", "feature", str(checkout))
    (checkout / "file.txt").write_text("changed, not committed\n")
    before, before_main = state(checkout), state(repository)

    copy = scratch.snapshot(checkout, tmp_path / "copy")
    assert (copy / ".git").is_dir(), "a snapshot must have a .git folder of its own"
    assert git(copy, "status", "--porcelain") == "M file.txt", "the snapshot sees the uncommitted change"
    git(copy, "switch", "--quiet", "--create", "PLAT-1-in-the-snapshot")
    git(copy, "commit", "--quiet", "--all", "-m", "made in the snapshot")
    git(copy, "tag", "made-in-the-snapshot")

    assert state(checkout) == before, f"a git command in the snapshot changed the real {layout}"
    assert state(repository) == before_main, "a git command in the snapshot changed the main checkout"
