"""Proof 2: a platform release reaches staging through its semver range,
production only when its pin moves, and moving the pin back rolls production
back."""

from __future__ import annotations

import time

from .. import status, tree
from ..plan import Step
from . import READY_BOUND, RECONCILE_BOUND, flux_reconcile, git, workloads

# A patch release: the walkthrough's own blocks release 1.1.0 on the same clusters
# afterwards (proof 4), and a release is immutable.
NEXT = "1.0.1"
OCI = "ocirepositories.source.toolkit.fluxcd.io"


def revision(env, cluster, source) -> str:
    got = status.get_json(cluster, env.runner, env.tool("kubectl"),
                          f"{OCI}/{source.name}", "-n", source.namespace)
    return got.get("status", {}).get("artifact", {}).get("revision", "")


def wait_revision(env, cluster, source, version: str, bound: float = RECONCILE_BOUND) -> None:
    """Until the platform source of ``cluster`` holds ``version``."""
    if not env.live:
        revision(env, cluster, source)
        return
    deadline = time.monotonic() + bound
    got = ""
    while time.monotonic() < deadline:
        got = revision(env, cluster, source)
        if got.split("@")[0] == version:
            return
        time.sleep(5)
    raise AssertionError(
        f"{cluster.target}: {source.where()} {source.kind}/{source.name} holds {got or 'nothing'}, "
        f"expected {version} within {bound:.0f}s; see `flux get sources oci -A` in the artifacts"
    )


def applied(env, cluster, source) -> dict[str, str]:
    """name -> lastAppliedRevision of the Kustomizations built from the platform source."""
    listing = status.get_json(cluster, env.runner, env.tool("kubectl"),
                              "kustomizations.kustomize.toolkit.fluxcd.io", "-n", source.namespace)
    return {
        k["metadata"]["name"]: k.get("status", {}).get("lastAppliedRevision", "")
        for k in listing.get("items", [])
        if k.get("spec", {}).get("sourceRef", {}).get("name") == source.name
        and k.get("spec", {}).get("sourceRef", {}).get("kind") == source.kind
    }


def move_pin(env, production, old: str, new: str) -> None:
    clone = env.checkout(f"pin-{new}")
    env.runner.call(Step(["edit", "clusters/production", f"tag: {old} -> tag: {new}"],
                         note="move production's pin in the clone", in_process=True),
                    lambda: tree.move_pin(clone, old, new))
    git(env, clone, "commit", "--all", "--quiet", "--message", f"production: pin platform {new}",
        note=f"commit the pin {new}")
    git(env, clone, "push", "--quiet", "origin", "HEAD", note="push to the served snapshot (never the working tree)")
    flux_reconcile(env, production, "kustomization", "flux-system", "--with-source")


def expect_applied(env, cluster, source, version: str, bound: float = RECONCILE_BOUND) -> None:
    """Until every Kustomization built from the platform source has applied
    ``version`` and all are Ready. Everything was Ready on the previous
    release already, so readiness alone proves nothing: the layers apply the
    new revision one after the other (dependsOn)."""
    if not env.live:
        applied(env, cluster, source)
        status.wait_all_ready(cluster, env.runner, env.tool("kubectl"), bound)
        return
    deadline = time.monotonic() + bound
    wrong: dict = {}
    while time.monotonic() < deadline:
        revisions = applied(env, cluster, source)
        wrong = {k: v for k, v in revisions.items() if v.split("@")[0] != version}
        if revisions and not wrong:
            status.wait_all_ready(cluster, env.runner, env.tool("kubectl"), max(30.0, deadline - time.monotonic()))
            return
        time.sleep(3)
    raise AssertionError(
        f"{cluster.target}: platform Kustomizations still on {wrong or 'nothing'} after {bound:.0f}s, expected "
        f"{version}; see `flux get kustomizations -A` in the artifacts"
    )


def run(env) -> None:
    pin = tree.production_pin(env.root)
    staging_source = tree.platform_source(env.root, "staging")
    production_source = tree.platform_source(env.root, "production")
    staging, production = env.cluster("staging"), env.cluster("production")
    for cluster in (staging, production):
        status.wait_all_ready(cluster, env.runner, env.tool("kubectl"), READY_BOUND)

    # The release carries a change to cert-manager's pods: a cluster that
    # takes it must replace them, one that does not must keep them.
    staging_pods = workloads.pods(env, staging, *workloads.CERT_MANAGER)
    production_pods = workloads.pods(env, production, *workloads.CERT_MANAGER)
    env.release(NEXT, change=lambda clone: workloads.annotate_release(clone, NEXT))
    flux_reconcile(env, staging, "source", "oci", staging_source.name, "-n", staging_source.namespace)
    flux_reconcile(env, production, "source", "oci", production_source.name, "-n", production_source.namespace)
    wait_revision(env, staging, staging_source, NEXT)
    expect_applied(env, staging, staging_source, NEXT)
    workloads.wait_replaced(env, staging, staging_pods, NEXT)
    wait_revision(env, production, production_source, pin)  # still the pinned release
    expect_applied(env, production, production_source, pin)
    workloads.unchanged(env, production, production_pods)

    move_pin(env, production, pin, NEXT)
    wait_revision(env, production, production_source, NEXT)
    expect_applied(env, production, production_source, NEXT)
    workloads.wait_replaced(env, production, production_pods, NEXT)
    released_pods = workloads.pods(env, production, *workloads.CERT_MANAGER)

    move_pin(env, production, NEXT, pin)  # roll back
    wait_revision(env, production, production_source, pin)
    expect_applied(env, production, production_source, pin)
    workloads.wait_replaced(env, production, released_pods, None)
