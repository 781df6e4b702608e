"""The private-fork proof's verdict on what the cluster holds, without a
cluster: it passes the state a deploy-key bootstrap from the fork leaves,
and names each way a cluster could be reading something else."""

from __future__ import annotations

import base64
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from cluster.scenarios import private_fork

HEAD = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class Fork:
    url: str
    port: int
    deploy_key: Path

    def head(self) -> str:
        return HEAD


@pytest.fixture
def fork(tmp_path: Path) -> Fork:
    key = tmp_path / "deploy_ed25519"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nkey\n-----END OPENSSH PRIVATE KEY-----\n")
    return Fork("ssh://me@127.0.0.1:40022/gitops-whitepaper.git", 40022, key)


def b64(text: str | bytes) -> str:
    return base64.b64encode(text if isinstance(text, bytes) else text.encode()).decode()


def sources(url: str, revision: str = f"main@sha1:{HEAD}") -> dict:
    return {name: {"spec": {"url": url}, "status": {"artifact": {"revision": revision}}}
            for name in private_fork.GIT_SOURCES}


def secret(fork: Fork, **extra: str) -> dict:
    data = {"identity": b64(fork.deploy_key.read_bytes()), "identity.pub": b64("ssh-ed25519 AAAA"),
            "known_hosts": b64(f"[127.0.0.1]:{fork.port} ssh-ed25519 AAAA")}
    data.update({k: b64(v) for k, v in extra.items()})
    return {"data": data}


@pytest.fixture
def snapshot(tmp_path: Path) -> Path:
    repo = tmp_path / "snapshot.git"
    subprocess.run(["git", "init", "--quiet", "--bare", str(repo)], check=True)
    return repo


def test_a_deploy_key_bootstrap_from_the_fork_passes(fork, snapshot) -> None:
    assert private_fork.check(fork, sources(fork.url), secret(fork), snapshot) == []


def test_each_way_of_reading_something_else_is_named(fork, snapshot) -> None:
    http = private_fork.check(fork, sources("http://127.0.0.1:1/gitops-whitepaper.git"), secret(fork), snapshot)
    assert any("reads http://127.0.0.1:1/gitops-whitepaper.git, not the fork" in p for p in http)
    stale = private_fork.check(fork, sources(fork.url, "main@sha1:" + "f" * 40), secret(fork), snapshot)
    assert any("not the fork's main@sha1:" + HEAD in p for p in stale)
    token = private_fork.check(fork, sources(fork.url), secret(fork, password="docs-test"), snapshot)
    assert any("expected ['identity', 'identity.pub', 'known_hosts']" in p for p in token)
    other = secret(fork)
    other["data"]["identity"] = b64("another key")
    assert any("does not hold the deploy key" in p for p in private_fork.check(fork, sources(fork.url), other, snapshot))
