"""A scratch snapshot of a linked worktree (``git worktree add``) is a
repository of its own: git commands a local block runs in it see the
worktree's branch and uncommitted changes, and change nothing in the real
repository or the worktree (harness.scratch.copy_worktree_git)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from harness import scratch

IDENTITY = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}


def git(cwd: Path, *args: str) -> str:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(cwd), **IDENTITY}
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def test_a_worktree_snapshot_changes_nothing_real(tmp_path):
    main = tmp_path / "main"
    main.mkdir()
    git(main, "init", "--quiet", "--template=", "--initial-branch", "main")
    (main / "file.txt").write_text("one\n")
    git(main, "add", "file.txt")
    git(main, "commit", "--quiet", "--no-gpg-sign", "-m", "one")
    worktree = tmp_path / "wt"
    git(main, "worktree", "add", "--quiet", "-b", "work", str(worktree))
    (worktree / "file.txt").write_text("two\n")  # an uncommitted change

    copy = scratch.snapshot(worktree, tmp_path / "snapshot")
    assert (copy / ".git").is_dir()
    assert git(copy, "rev-parse", "--abbrev-ref", "HEAD") == "work"
    assert git(copy, "status", "--porcelain") == "M file.txt"
    git(copy, "switch", "--quiet", "--create", "made-in-the-snapshot")
    git(copy, "commit", "--quiet", "--no-gpg-sign", "--all", "-m", "two")

    assert git(main, "branch", "--list", "made-in-the-snapshot") == ""
    assert git(worktree, "rev-parse", "--abbrev-ref", "HEAD") == "work"
    assert git(worktree, "log", "--format=%s") == "one"
    assert git(worktree, "status", "--porcelain") == "M file.txt"
