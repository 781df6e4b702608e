"""The proofs of the cluster tier. Each is a function of a
``TierEnvironment``; run on a ``Recorder`` it only records its commands, which
is how ``--plan`` prints them. Assertions happen only on live runs."""

from __future__ import annotations

import threading

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


def side_by_side(*calls, at_once: bool = True) -> list:
    """Run ``calls`` at once, each in a thread of its own (one after the
    other when not ``at_once``: a plan lists its steps in a fixed order).
    Returns their results once all are done, or raises the first error (in
    the order of ``calls``) once all are done. The threads are daemons, and
    this thread waits in short slices: a Ctrl-C reaches it at once, and the
    tier's teardown does not wait for a wait that the teardown makes
    pointless."""
    if not at_once:
        return [call() for call in calls]
    results: list = [None] * len(calls)
    errors: list = [None] * len(calls)

    def one(index: int, call) -> None:
        try:
            results[index] = call()
        except BaseException as error:  # noqa: BLE001 - raised in the calling thread
            errors[index] = error

    threads = [threading.Thread(target=one, args=(i, c), daemon=True) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(0.5)
    for error in errors:
        if error is not None:
            raise error
    return results


def git(env, clone, *args: str, note: str = "") -> str:
    """A git command in a scratch clone of the served snapshot."""
    proc = env.runner.run(Step(
        ["git", "-c", "user.name=docs-test harness", "-c", "user.email=harness@gitops-whitepaper.invalid",
         "-C", str(clone), *args], note=note, timeout=120,
    ))
    return proc.stdout
