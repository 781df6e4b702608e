"""The proofs of the cluster tier. Each is a function of a
``TierEnvironment``; run on a ``Recorder`` it only records its commands, which
is how ``--plan`` prints them. Assertions happen only on live runs."""

from __future__ import annotations

from ..plan import Step
from ..providers import Cluster, kube_args

# How long a whole cluster may take to become Ready after bootstrap, and how
# long one reconciliation (a new release, a moved pin) may take.
READY_BOUND = 15 * 60
RECONCILE_BOUND = 5 * 60


def flux_reconcile(env, cluster: Cluster, *what: str) -> None:
    env.runner.run(Step(
        [env.tool("flux"), "reconcile", *what, *kube_args(cluster)],
        note=f"{cluster.target}: reconcile {' '.join(what)} now rather than at its interval",
        context=cluster.context, kubeconfig=cluster.kubeconfig, timeout=RECONCILE_BOUND,
    ))


def git(env, clone, *args: str, note: str = "") -> str:
    """A git command in a scratch clone of the served snapshot."""
    proc = env.runner.run(Step(
        ["git", "-c", "user.name=docs-test harness", "-c", "user.email=harness@gitops-whitepaper.invalid",
         "-C", str(clone), *args], note=note, timeout=120,
    ))
    return proc.stdout
