"""A scratch copy of a git worktree is a repository of its own: git commands
a block runs there (a new branch, a commit) never reach the real repository
or move the real worktree's HEAD."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from harness import scratch


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                          capture_output=True, text=True, env={**os.environ, "GIT_TERMINAL_PROMPT": "0"}).stdout


def test_a_worktree_snapshot_does_not_write_to_the_shared_repository(tmp_path: Path) -> None:
    main = tmp_path / "main"
    main.mkdir()
    git("init", "--quiet", "--initial-branch=main", cwd=main)
    (main / "file.txt").write_text("one\n")
    git("add", "file.txt", cwd=main)
    git("commit", "--quiet", "-m", "one", cwd=main)
    worktree = tmp_path / "wt"
    git("worktree", "add", "--quiet", str(worktree), "-b", "work", cwd=main)
    (worktree / "file.txt").write_text("changed, not committed\n")
    branches_before = git("branch", "--list", cwd=main)

    copy = scratch.snapshot(worktree, tmp_path / "copy")
    assert (copy / ".git").is_dir(), "the copy's .git still points at the shared repository"
    assert git("rev-parse", "--abbrev-ref", "HEAD", cwd=copy).strip() == "work"
    assert git("status", "--porcelain", cwd=copy).strip() == "M file.txt"
    git("switch", "--quiet", "--create", "made-in-the-copy", cwd=copy)
    git("commit", "--quiet", "--all", "-m", "in the copy", cwd=copy)

    assert git("branch", "--list", cwd=main) == branches_before, "a branch made in the copy reached the repository"
    assert git("rev-parse", "--abbrev-ref", "HEAD", cwd=worktree).strip() == "work"
    assert git("status", "--porcelain", cwd=worktree).strip() == "M file.txt"
