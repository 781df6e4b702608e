"""The kind provider drives pytest-kind's KindCluster with the pinned kind
binary, and the plan prints exactly the command KindCluster runs. A small
script stands in for the kind binary (no Docker here): it records its argv and
writes a kubeconfig, as kind does."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cluster import names
from cluster.guard import ContextGuard
from cluster.providers import get
from cluster.providers.kind import KindProvider, pick_ipv4
from cluster.runner import LiveRunner, Recorder

FAKE_KIND = """#!/bin/sh
echo "$@" >> "{log}"
if [ "$1" = get ]; then exit 0; fi
for arg in "$@"; do case "$arg" in --kubeconfig=*) cfg="${{arg#--kubeconfig=}}";; esac; done
cat > "$cfg" <<'KUBECONFIG'
apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "https://127.0.0.1:1"}}}}]
users: [{{name: u, user: {{}}}}]
contexts: [{{name: kind-gwp-staging, context: {{cluster: c, user: u}}}}]
current-context: kind-gwp-staging
KUBECONFIG
"""


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "create").mkdir(parents=True)
    (root / "create" / "staging.yaml").write_text("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n")
    return root


def test_kindcluster_runs_what_the_plan_prints(tree: Path, tmp_path: Path) -> None:
    log = tmp_path / "kind.log"
    kind = tmp_path / "kind"
    kind.write_text(FAKE_KIND.format(log=log))
    kind.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    provider = KindProvider({"kind": str(kind), "kubectl": "kubectl", "docker": "docker"}, str(work), str(tree))
    runner = LiveRunner(ContextGuard(), "kubectl", echo=lambda line: None)
    cwd_before = sorted(os.listdir(os.getcwd()))

    cluster = provider.create("staging", runner)

    calls = [line.split() for line in log.read_text().splitlines()]
    created = [c for c in calls if c[:2] == ["create", "cluster"]]
    assert created == [provider.create_step("staging").argv[1:]], calls
    assert cluster.context == names.kube_context("staging") == "kind-gwp-staging"
    assert Path(cluster.kubeconfig).parent == work
    assert Path(cluster.kubeconfig).is_file()
    assert sorted(os.listdir(os.getcwd())) == cwd_before, "KindCluster left a folder in the current directory"


def test_missing_kind_config_says_which_file(tree: Path, tmp_path: Path) -> None:
    provider = KindProvider({}, str(tmp_path), str(tree))
    runner = LiveRunner(ContextGuard(), "kubectl", echo=lambda line: None)
    with pytest.raises(FileNotFoundError, match="create/sandbox.yaml"):
        provider.create("sandbox", runner)


def test_create_in_a_plan_runs_nothing(tree: Path) -> None:
    provider = get("kind", {"kind": "/nonexistent/kind"}, "$GWP_WORK", str(tree))
    runner = Recorder()
    cluster = provider.create("staging", runner)
    assert runner.steps[0].argv[:3] == ["/nonexistent/kind", "create", "cluster"]
    assert cluster.kubeconfig == "$GWP_WORK/gwp-staging.kubeconfig"


def test_unknown_provider_is_named() -> None:
    with pytest.raises(ValueError, match="unknown cluster provider 'k3d'; known: kind"):
        get("k3d", {}, "/tmp", "/tmp")


@pytest.mark.parametrize("out, want", [("172.18.0.1 fc00:f853:ccd:e793::1 ", "172.18.0.1"),
                                       ("fc00::1 10.89.0.1", "10.89.0.1")])
def test_gateway_is_the_ipv4_one(out: str, want: str) -> None:
    assert pick_ipv4(out) == want


def test_no_ipv4_gateway_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="no IPv4 gateway"):
        pick_ipv4("fc00::1")
