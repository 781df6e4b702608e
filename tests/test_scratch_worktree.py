"""A scratch copy of a linked worktree (``git worktree add``) is a repository
of its own: what a local block does with git there (a new branch, a commit,
a switch) never reaches the real repository or the worktree it was copied
from."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from harness import scratch


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                          capture_output=True, text=True, env={**os.environ, "GIT_TERMINAL_PROMPT": "0"}).stdout


def test_a_snapshot_of_a_worktree_shares_nothing_git_writes(tmp_path: Path) -> None:
    main = tmp_path / "main"
    main.mkdir()
    git("init", "--quiet", "--initial-branch=main", cwd=main)
    (main / "file.txt").write_text("one\n")
    git("add", "-A", cwd=main)
    git("commit", "--quiet", "-m", "base", cwd=main)
    worktree = tmp_path / "wt"
    git("worktree", "add", "--quiet", "-b", "feature", str(worktree), "main", cwd=main)
    (worktree / "file.txt").write_text("two, not committed\n")
    head = git("rev-parse", "HEAD", cwd=worktree)

    copy = scratch.snapshot(worktree, tmp_path / "copy")
    assert (copy / ".git").is_dir(), "the copy must not point at the real repository"
    assert git("branch", "--show-current", cwd=copy).strip() == "feature"
    assert git("rev-parse", "HEAD", cwd=copy) == head
    assert git("status", "--porcelain", cwd=copy).strip() == "M file.txt"

    git("switch", "--quiet", "--create", "scratch-branch", cwd=copy)
    git("commit", "--quiet", "--all", "-m", "in the copy", cwd=copy)

    assert "scratch-branch" not in git("branch", "--list", cwd=main)
    assert git("branch", "--show-current", cwd=worktree).strip() == "feature"
    assert git("rev-parse", "HEAD", cwd=worktree) == head
    assert git("status", "--porcelain", cwd=worktree).strip() == "M file.txt"
