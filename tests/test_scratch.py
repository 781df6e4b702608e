"""Scratch copies (harness.scratch) of a linked worktree stay apart from it:
what a local block does with git in the copy (a new branch, a commit) never
reaches the worktree's HEAD or the repository it shares."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from harness import scratch

IDENTITY = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}


def git(cwd: Path, *args: str) -> str:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(cwd), **IDENTITY}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def test_a_snapshot_of_a_linked_worktree_is_a_repository_of_its_own(tmp_path):
    main = tmp_path / "main"
    main.mkdir()
    git(main, "init", "--quiet", "--template=", "--initial-branch", "main")
    (main / "file.txt").write_text("one\n")
    git(main, "add", "file.txt")
    git(main, "commit", "--quiet", "--no-gpg-sign", "-m", "one")
    worktree = tmp_path / "worktree"
    git(main, "worktree", "add", "--quiet", str(worktree), "-b", "work")
    (worktree / "file.txt").write_text("changed, not committed\n")

    copy = scratch.snapshot(worktree, tmp_path / "copy")
    assert (copy / ".git").is_dir()
    assert git(copy, "rev-parse", "--abbrev-ref", "HEAD").strip() == "work"
    assert git(copy, "status", "--porcelain").strip() == "M file.txt", "the copy sees the uncommitted change"
    git(copy, "checkout", "--quiet", "-b", "made-in-the-copy")
    git(copy, "commit", "--quiet", "--no-gpg-sign", "-am", "in the copy")

    assert git(worktree, "rev-parse", "--abbrev-ref", "HEAD").strip() == "work"
    assert git(worktree, "status", "--porcelain").strip() == "M file.txt"
    assert "made-in-the-copy" not in git(main, "branch", "--list")
    assert git(main, "log", "--oneline", "--all").count("\n") == 1
