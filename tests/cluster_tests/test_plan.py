"""--plan: the command sequence a run executes, printed without Docker."""

from __future__ import annotations

import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from cluster import names, preflight, tier
from cluster.scenarios import doc_blocks
from harness.model import PROJECT_ROOT, Block, Mode, Origin

TOOLS = preflight.Preflight(tools={"kind": "/opt/kind", "kubectl": "/opt/kubectl", "flux": "/opt/flux",
                                   "docker": "/opt/docker"})


def cluster_block(page: str, index: int, target: str, text: str) -> Block:
    return Block(page=page, index=index, lang="bash", attrs="", text=text, origins=[Origin(page, 10 + index)],
                 fence=Origin(page, 9 + index), mode=Mode.CLUSTER, options={"cluster": target})


@pytest.fixture(scope="module")
def plan_text() -> str:
    blocks = [cluster_block("docs/example/kind.md", 3, "staging", "flux get kustomizations --context kind-staging"),
              cluster_block("docs/example/kind.md", 1, "development", "kubectl get ns")]
    return tier.build_plan(PROJECT_ROOT, "kind", blocks=blocks, found=TOOLS)


def commands(text: str) -> list[str]:
    """The plan's command lines, less the kind network every docker and
    kind command names in its environment."""
    text = text.replace("KIND_EXPERIMENTAL_DOCKER_NETWORK=gwp-kind ", "")
    return [line for line in text.splitlines() if line.startswith(("/opt/", "(cd", "KIND_GATEWAY=", "git "))]


def index(lines: list[str], pattern: str) -> int:
    for i, line in enumerate(lines):
        if re.search(pattern, line):
            return i
    raise AssertionError(f"no command matches {pattern!r} in the plan")


def test_clusters_come_from_the_trees_kind_configs(plan_text: str) -> None:
    for target in names.ALL_CLUSTERS:
        assert (f"/opt/kind create cluster --name=gwp-{target} \"--kubeconfig=$GWP_WORK/gwp-{target}.kubeconfig\" "
                f"\"--config=$GWP_WORK/kind-{target}.yaml\"") in commands(plan_text)


def test_order_network_then_git_server_then_registry_then_flux(plan_text: str) -> None:
    lines = commands(plan_text)
    first = index(lines, r"kind create cluster --name=gwp-development")
    gateway = index(lines, r"^KIND_GATEWAY=\$\(/opt/docker network inspect gwp-kind")
    registry = index(lines, r"/opt/docker run --detach .*--name=gwp-registry --network=gwp-kind .*"
                            r"\"--publish=\$KIND_GATEWAY:\$REGISTRY_PORT:5000\" registry:3\.0\.0$")
    release = index(lines, r"bash snippets/platform-release.sh 1\.0\.0")
    wiring = index(lines, r"--context=kind-gwp-development apply --server-side -f -")
    bootstrap = index(lines, r"/opt/flux bootstrap git .*--context=kind-gwp-development")
    assert first < gateway < registry < release < wiring < bootstrap
    assert plan_text.index("(in the test process) serve a snapshot") < plan_text.index("docker run --detach")


def test_flux_is_bootstrapped_from_the_local_git_server(plan_text: str) -> None:
    for target in names.LONG_LIVED:
        line = next(l for l in plan_text.splitlines() if "bootstrap git" in l and f"gwp-{target}." in l)
        assert '"--url=http://$KIND_GATEWAY:$GIT_PORT/gitops-whitepaper.git"' in line
        assert "--allow-insecure-http=true" in line and "--token-auth=true" in line
        assert f"--path=clusters/{target}" in line and "--branch=main" in line
    sandbox = next(l for l in plan_text.splitlines() if "bootstrap git" in l and "gwp-sandbox." in l)
    assert "--path=clusters/sandbox-a" in sandbox and "--branch=PLAT-1-try-a-sandbox" in sandbox


def test_cluster_vars_carry_the_endpoints(plan_text: str) -> None:
    assert plan_text.count("name: cluster-vars") == len(names.ALL_CLUSTERS)
    assert "platform_git_url: http://$KIND_GATEWAY:$GIT_PORT/gitops-whitepaper.git" in plan_text
    assert "platform_oci_url: oci://$KIND_GATEWAY:$REGISTRY_PORT/platform" in plan_text
    assert 'platform_oci_insecure: "true"' in plan_text


def test_every_cluster_command_is_pinned_to_a_harness_cluster(plan_text: str) -> None:
    for line in commands(plan_text):
        if line.startswith(("/opt/kubectl", "/opt/flux")) and "config set-context" not in line:
            assert re.search(r'"--kubeconfig=\$GWP_WORK/gwp-[\w-]+\.kubeconfig" --context=kind-gwp-[\w-]+', line), line
    assert "/.kube/" not in plan_text and "KUBECONFIG=~" not in plan_text


def test_promotion_pushes_then_moves_the_pin_and_back(plan_text: str) -> None:
    lines = commands(plan_text)
    release = index(lines, r"platform-release.sh 1\.2\.0")
    forward = index(lines, r"commit --all --quiet --message 'production: pin platform 1\.2\.0'")
    back = index(lines, r"commit --all --quiet --message 'production: pin platform 1\.0\.0'")
    assert release < forward < back
    assert "edit clusters/production tag: 1.0.0 -> tag: 1.2.0" in plan_text


def test_cluster_blocks_run_in_page_order_with_the_pages_context(plan_text: str) -> None:
    first = plan_text.index("docs/example/kind.md:11: cluster block on development")
    second = plan_text.index("docs/example/kind.md:13: cluster block on staging")
    assert first < second
    assert "/opt/kubectl config set-context kind-staging --cluster=kind-gwp-staging" in plan_text
    block_line = next(l for l in plan_text.splitlines() if "kubectl get ns" in l)
    assert 'PLATFORM_GIT_URL="http://$KIND_GATEWAY:$GIT_PORT/gitops-whitepaper.git"' in block_line
    assert 'PLATFORM_OCI_URL="oci://$KIND_GATEWAY:$REGISTRY_PORT/platform"' in block_line


def test_sandbox_runs_the_trees_scripts_in_the_pages_order(plan_text: str) -> None:
    lines = commands(plan_text)
    clone = index(lines, r"bash snippets/sandbox-clone.sh development sandbox-a --branch PLAT-1-try-a-sandbox")
    boot = index(lines, r"flux bootstrap git .*gwp-sandbox")
    down = index(lines, r"bash snippets/sandbox-clean-down.sh --context kind-gwp-sandbox")
    back = index(lines, r"bash snippets/sandbox-return.sh sandbox-a development")
    assert clone < boot < down < back


def test_everything_is_removed_at_the_end(plan_text: str) -> None:
    # The sandbox and the proofs' own clusters go as soon as their proofs are
    # done; the long-lived ones and the registry at the end.
    delete = '/opt/kind delete cluster --name=gwp-{0} "--kubeconfig=$GWP_WORK/gwp-{0}.kubeconfig"'
    listed = commands(plan_text)
    tail = listed[-(len(names.LONG_LIVED) + 1):]
    assert sorted(tail[:-1]) == sorted(delete.format(t) for t in names.LONG_LIVED)
    assert tail[-1] == "/opt/docker rm --force --volumes gwp-registry"
    for early in (names.SANDBOX, *names.PROOF_CLUSTERS):
        assert listed.count(delete.format(early)) == 1, f"the {early} cluster is not deleted once"


def test_a_block_aimed_at_another_cluster_is_refused() -> None:
    from cluster.guard import RefusedContext
    from cluster.providers import Cluster

    staging = Cluster("staging", "gwp-staging", "kind-gwp-staging", "/tmp/x")
    bad = cluster_block("docs/x.md", 0, "staging", "kubectl --context kind-production delete ns apps")
    with pytest.raises(RefusedContext, match="docs/x.md:10.*kind-production"):
        doc_blocks.check_block(bad, staging)
    with pytest.raises(RefusedContext, match="must not create or delete clusters"):
        doc_blocks.check_block(cluster_block("docs/x.md", 0, "staging", "kind delete cluster --name staging"),
                               staging)


def test_plan_command_line_prints_the_plan(monkeypatch, capsys) -> None:
    """``python -m cluster --plan``, run as ``-m`` runs it but in this
    process (a new interpreter would spend most of the test importing)."""
    monkeypatch.setattr(sys, "argv", ["cluster", "--plan"])
    with pytest.raises(SystemExit) as ended:
        runpy.run_module("cluster", run_name="__main__", alter_sys=True)
    out, err = capsys.readouterr()
    assert ended.value.code == 0, err
    assert out.startswith("# Plan of the cluster tier")
    assert "create cluster --name=gwp-production" in out


def test_each_cluster_is_bootstrapped_once_the_sandbox_from_its_clone() -> None:
    # The pages' sandbox blocks come after the sandbox proof has made the
    # sandbox from a cloned directory on a work branch, and reuse it.
    blocks = [cluster_block("docs/example/kind.md", 1, "sandbox", "flux get sources git --context kind-sandbox")]
    text = tier.build_plan(PROJECT_ROOT, "kind", blocks=blocks, found=TOOLS)
    bootstraps = [line for line in text.splitlines() if line.startswith("/opt/flux bootstrap git")]
    assert len(bootstraps) == len(names.ALL_CLUSTERS)
    sandbox = [line for line in bootstraps if "--context=kind-gwp-sandbox" in line]
    assert len(sandbox) == 1 and "--path=clusters/sandbox-a" in sandbox[0]
    lines = text.splitlines()
    assert index(lines, r"--path=clusters/sandbox-a") < index(lines, r"cluster block on sandbox")


def test_the_readers_values_are_the_tiers_own() -> None:
    """A block that exports a variable the page tells the reader to set runs
    with the tier's value; other exports are left as the page wrote them."""
    text = ("export PLATFORM_GIT_URL=https://github.com/YOUR-USER/gitops-whitepaper\n"
            "  export GIT_PASSWORD=YOUR-TOKEN   # for an https:// URL\nexport OTHER=1\n")
    got, replaced = doc_blocks.with_readers_values(text, {"PLATFORM_GIT_URL": "x", "GIT_PASSWORD": "y"})
    assert replaced == ["PLATFORM_GIT_URL", "GIT_PASSWORD"]
    assert got.splitlines() == ['export PLATFORM_GIT_URL="${PLATFORM_GIT_URL}"',
                                '  export GIT_PASSWORD="${GIT_PASSWORD}"   # for an https:// URL', "export OTHER=1"]
    out = subprocess.run(["bash", "-euc", got + 'echo "$PLATFORM_GIT_URL $GIT_PASSWORD"'], capture_output=True,
                         text=True, env={"PLATFORM_GIT_URL": "http://10.0.0.1/x.git", "GIT_PASSWORD": "p",
                                         "PATH": "/usr/bin:/bin"}).stdout
    assert out.strip() == "http://10.0.0.1/x.git p"
