"""The git server for real: snapshot a repository with uncommitted work,
clone it with git, push to it, and check the working tree never changes."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from cluster import gitserver


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={**os.environ, "GIT_TERMINAL_PROMPT": "0"}).stdout


def fingerprint(root: Path) -> dict[str, str]:
    """Every file under root (the .git folder included) and its content hash."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()
    }


@pytest.fixture
def work_tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    root.mkdir()
    git("init", "--quiet", "--template=", "--initial-branch=main", cwd=root)
    (root / ".gitignore").write_text("ignored.txt\n")
    (root / "committed.yaml").write_text("kind: Committed\n")
    (root / "script.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "script.sh").chmod(0o755)
    (root / "gone.txt").write_text("deleted after the commit\n")
    git("add", "-A", cwd=root)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-m", "base", cwd=root)
    (root / "committed.yaml").write_text("kind: ChangedNotCommitted\n")
    (root / "new" / "dir").mkdir(parents=True)
    (root / "new" / "dir" / "untracked.yaml").write_text("kind: Untracked\n")
    (root / "ignored.txt").write_text("never served\n")
    (root / "gone.txt").unlink()
    return root


def test_snapshot_holds_the_working_tree_with_uncommitted_changes(work_tree: Path, tmp_path: Path) -> None:
    with gitserver.serve(work_tree) as server:
        clone = tmp_path / "clone"
        git("clone", "--quiet", server.url, str(clone), cwd=tmp_path)
    assert (clone / "committed.yaml").read_text() == "kind: ChangedNotCommitted\n"
    assert (clone / "new" / "dir" / "untracked.yaml").read_text() == "kind: Untracked\n"
    assert not (clone / "ignored.txt").exists(), "an ignored file was served"
    assert not (clone / "gone.txt").exists(), "a file deleted in the working tree was served"
    assert os.access(clone / "script.sh", os.X_OK), "the executable bit was lost"
    assert git("rev-parse", "--abbrev-ref", "HEAD", cwd=clone).strip() == "main"


def test_pushes_land_in_the_snapshot_never_in_the_working_tree(work_tree: Path, tmp_path: Path) -> None:
    before = fingerprint(work_tree)
    status_before = git("status", "--porcelain", cwd=work_tree)
    with gitserver.serve(work_tree) as server:
        first = server.head()
        clone = tmp_path / "clone"
        git("clone", "--quiet", server.url, str(clone), cwd=tmp_path)
        (clone / "pushed.yaml").write_text("kind: Pushed\n")
        git("add", "pushed.yaml", cwd=clone)
        git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-m", "pushed", cwd=clone)
        git("push", "--quiet", "origin", "main", cwd=clone)
        git("push", "--quiet", "origin", "main:work-branch", cwd=clone)
        assert server.head() != first
        assert server.head() == git("rev-parse", "HEAD", cwd=clone).strip()
        assert server.head("work-branch") == server.head()
        again = tmp_path / "again"
        git("clone", "--quiet", server.url, str(again), cwd=tmp_path)
        assert (again / "pushed.yaml").is_file(), "a second clone does not see the push"
        repo_dir = server.repo_dir
    assert fingerprint(work_tree) == before, "the working tree (or its .git) changed"
    assert git("status", "--porcelain", cwd=work_tree) == status_before
    assert not (work_tree / "pushed.yaml").exists()
    assert not repo_dir.exists(), "the snapshot was not removed when the server stopped"


def test_stopped_server_refuses_connections(work_tree: Path, tmp_path: Path) -> None:
    server = gitserver.serve(work_tree)
    url = server.url
    server.stop()
    server.stop()  # twice is fine
    proc = subprocess.run(["git", "ls-remote", url], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
    assert proc.returncode != 0


def test_a_client_without_thin_pack_can_clone(work_tree: Path, tmp_path: Path) -> None:
    """go-git (in the flux CLI and source-controller) never offers thin-pack;
    a client asking for exactly what go-git asks for must get the snapshot.
    (The cluster tier clones with go-git itself, in flux bootstrap.)"""
    from dulwich.client import HttpGitClient
    from dulwich.repo import Repo

    with gitserver.serve(work_tree) as server:
        client = HttpGitClient(f"http://{server.host}:{server.port}", thin_packs=False)
        assert b"thin-pack" not in client._fetch_capabilities
        target = Repo.init(str(tmp_path / "clone"), mkdir=True)
        try:
            result = client.fetch(gitserver.names.GIT_REPO_PATH, target)
            assert result.refs[b"refs/heads/main"].decode() == server.commit
        finally:
            target.close()
