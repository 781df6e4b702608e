"""The context guard refuses every command that could reach a cluster the
harness did not create."""

from __future__ import annotations

from pathlib import Path

import pytest

from cluster.guard import ContextGuard, RefusedContext
from cluster.preflight import find_tool

OURS = "kind-gwp-staging"


@pytest.fixture
def guard(tmp_path: Path) -> ContextGuard:
    g = ContextGuard()
    g.register(OURS, str(tmp_path / "gwp-staging.kubeconfig"))
    return g


def test_accepts_its_own_context_and_kubeconfig(guard: ContextGuard, tmp_path: Path) -> None:
    config = str(tmp_path / "gwp-staging.kubeconfig")
    guard.check_argv(["kubectl", f"--kubeconfig={config}", f"--context={OURS}", "apply", "-f", "-"], OURS, config)
    guard.check_argv(["flux", "--kubeconfig", config, "--context", OURS, "reconcile"], OURS, None)


@pytest.mark.parametrize(
    "argv, context, why",
    [
        (["kubectl", "apply"], "kind-staging", "not created by the harness"),
        (["kubectl", "--context=kind-staging", "apply"], OURS, "names --context=kind-staging"),
        (["kubectl", "--kubeconfig=/root/.kube/config", "apply"], OURS, "is not the harness's file"),
        (["kubectl", "apply"], OURS, "no kubeconfig given"),
    ],
)
def test_refuses_anything_else(guard: ContextGuard, argv, context, why) -> None:
    with pytest.raises(RefusedContext, match=why):
        guard.check_argv(argv, context, None)


def test_never_registers_a_kubeconfig_under_home(tmp_path: Path) -> None:
    with pytest.raises(RefusedContext, match="temporary directory only"):
        ContextGuard().register(OURS, str(Path.home() / ".kube" / "config"))


KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: {a}
  cluster: {{server: "https://127.0.0.1:1"}}
- name: other
  cluster: {{server: "https://127.0.0.1:2"}}
users:
- name: {a}
  user: {{}}
contexts:
- name: {a}
  context: {{cluster: {a}, user: {a}}}
- name: other
  context: {{cluster: other, user: {a}}}
current-context: {current}
"""


@pytest.mark.skipif(find_tool("kubectl") is None, reason="kubectl not found: the live check asks kubectl")
def test_live_check_reads_the_current_context_with_kubectl(tmp_path: Path) -> None:
    config = tmp_path / "gwp-staging.kubeconfig"
    guard = ContextGuard()
    guard.register(OURS, str(config))
    kubectl = find_tool("kubectl")
    config.write_text(KUBECONFIG.format(a=OURS, current=OURS))
    guard.check_live(kubectl, OURS)
    config.write_text(KUBECONFIG.format(a=OURS, current="other"))
    with pytest.raises(RefusedContext, match="selects other"):
        guard.check_live(kubectl, OURS)
