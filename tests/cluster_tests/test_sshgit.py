"""The SSH git server for real: Debian's sshd serving a bare clone of a
snapshot to one deploy key. git clones and pushes with that key; any other
key, and any command but fetch and push, is refused; stopping it leaves no
process and no listener behind. Skipped, with what to install, where
openssh-server is missing."""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
from pathlib import Path

import pytest

from cluster import gitserver, names, processes, sshgit

# One worker runs the module, so its one SSH server (below) starts once.
pytestmark = [pytest.mark.skipif(bool(sshgit.missing_tools()), reason="; ".join(sshgit.missing_tools())),
              pytest.mark.xdist_group("sshgit")]


def git(*args: str, cwd: Path, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, check=check, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "GIT_TERMINAL_PROMPT": "0", **(env or {})})


# One snapshot and one fork for the module: each sshd start costs a few
# tenths of a second. The tests only read from the fork, push to it once, or
# put back what they change.
@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    root = tmp_path_factory.mktemp("snapshot") / "tree"
    root.mkdir()
    git("init", "--quiet", "--template=", "--initial-branch=main", cwd=root)
    (root / "README.md").write_text("the fork\n")
    with gitserver.serve(root) as server:
        yield server


@pytest.fixture(scope="module")
def fork(snapshot, tmp_path_factory):
    server = sshgit.serve(str(snapshot.repo_dir), tmp_path_factory.mktemp("fork") / "ssh")
    try:
        yield server
    finally:
        server.stop()


def test_the_deploy_key_clones_and_pushes_over_ssh(fork, snapshot, tmp_path: Path) -> None:
    assert fork.url.startswith(f"ssh://{fork.user}@127.0.0.1:")
    assert fork.head() == snapshot.commit, "the fork is not a clone of the snapshot"
    clone = tmp_path / "clone"
    git("clone", "--quiet", fork.url, str(clone), cwd=tmp_path, env=fork.git_env())
    assert (clone / "README.md").read_text() == "the fork\n"
    (clone / "pushed.txt").write_text("over ssh\n")
    git("add", "pushed.txt", cwd=clone)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-m", "push over ssh", cwd=clone)
    git("push", "--quiet", "origin", "main", cwd=clone, env=fork.git_env())
    pushed = git("rev-parse", "HEAD", cwd=clone).stdout.strip()
    assert fork.head() == pushed
    assert snapshot.head() == snapshot.commit, "a push to the fork reached the snapshot it was cloned from"


def test_another_key_is_refused(fork, tmp_path: Path) -> None:
    stranger = sshgit.keygen(tmp_path / "stranger", "not a deploy key")
    proc = git("ls-remote", fork.url, cwd=tmp_path, env=fork.git_env(stranger), check=False)
    assert proc.returncode != 0
    assert "Permission denied (publickey)" in proc.stderr, proc.stderr


def test_the_deploy_key_gets_no_shell_and_no_other_repository(fork, tmp_path: Path) -> None:
    ssh = fork.git_env()["GIT_SSH_COMMAND"].split() + ["-p", str(fork.port), f"{fork.user}@{fork.host}"]
    commands = ("id", "git-upload-pack '/etc'", "git-receive-pack '/other.git'")
    # Side by side: each connection spends most of its fifth of a second waiting on the handshake.
    with concurrent.futures.ThreadPoolExecutor(len(commands)) as pool:
        procs = pool.map(lambda command: subprocess.run([*ssh, command], capture_output=True, text=True, timeout=60),
                         commands)
    for command, proc in zip(commands, procs):
        assert proc.returncode != 0, f"{command!r} was allowed: {proc.stdout}"
        assert f"may only fetch from and push to {names.GIT_REPO_PATH}" in proc.stderr, proc.stderr


def test_a_host_key_other_than_the_servers_is_refused(fork, tmp_path: Path) -> None:
    kept = fork.known_hosts.read_text()
    fork.known_hosts.write_text(f"[{fork.host}]:{fork.port} ssh-ed25519 "
                                "AAAAC3NzaC1lZDI1NTE5AAAAIO4MpxbsgQB+9pacejnkHV9YRTdyUR9T9V++EAWvYn20\n")
    try:
        proc = git("ls-remote", fork.url, cwd=tmp_path, env=fork.git_env(), check=False)
    finally:
        fork.known_hosts.write_text(kept)
    assert proc.returncode != 0 and "HOST IDENTIFICATION HAS CHANGED" in proc.stderr, proc.stderr


def test_stop_ends_sshd_and_frees_its_port(snapshot, tmp_path: Path) -> None:
    server = sshgit.serve(str(snapshot.repo_dir), tmp_path / "ssh")
    pid, port = server.process.proc.pid, server.port
    assert processes.port_is_bound(port)
    server.stop()
    server.stop()  # twice is fine
    assert not processes.pid_alive(pid)
    assert not processes.port_is_bound(port)


def test_forced_command_accepts_only_fetch_and_push_of_the_fork(tmp_path: Path) -> None:
    """The forced command hands git-shell the fork, whatever spelling of its
    path the client sent, and refuses everything else before git-shell."""
    repo = tmp_path / "ssh" / "gitops-whitepaper.git"
    repo.mkdir(parents=True)
    script = tmp_path / "git-only.sh"
    script.write_text(sshgit.forced_command(repo))
    script.chmod(0o755)
    stubs = tmp_path / "bin"
    stubs.mkdir()
    (stubs / "git-shell").write_text('#!/bin/sh\necho "git-shell $1 $2 in $(pwd)"\n')
    (stubs / "git-shell").chmod(0o755)

    def run(command: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(script)], capture_output=True, text=True, timeout=30,
                              env={"PATH": f"{stubs}:/usr/bin:/bin", "SSH_ORIGINAL_COMMAND": command})

    for sent in ("git-upload-pack '/gitops-whitepaper.git'", "git-receive-pack '/gitops-whitepaper.git'",
                 "git-upload-pack 'gitops-whitepaper.git'", "git-upload-pack /gitops-whitepaper.git"):
        proc = run(sent)
        verb = sent.split()[0]
        assert proc.returncode == 0, (sent, proc.stderr)
        assert proc.stdout.strip() == f"git-shell -c {verb} 'gitops-whitepaper.git' in {repo.parent}", sent
    for refused in ("git-upload-archive '/gitops-whitepaper.git'", "git-upload-pack '/etc/passwd'",
                    "git-upload-pack '/gitops-whitepaper.git'; id", "sh", ""):
        proc = run(refused)
        assert proc.returncode == 1 and proc.stdout == "", refused
