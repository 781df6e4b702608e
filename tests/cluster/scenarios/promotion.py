"""Proof 2: a platform release reaches staging through its semver range,
production only when its pin moves, and moving the pin back rolls production
back."""

from __future__ import annotations

from .. import status, tree
from ..plan import Step
from . import READY_BOUND, RECONCILE_BOUND, doc_blocks, flux_reconcile, git, side_by_side, workloads

# A release above the walkthrough's: its blocks (proof 4) run first, on
# clusters in the state a reader's are in (staging on 1.0.0, then 1.1.0),
# and a release is immutable.
NEXT = "1.2.0"

KEY = "promotion"


def start_ahead(env) -> None:
    """Run the proof in the background (``Provider.proofs_ahead``) as soon
    as the page blocks are done with staging and production, and with
    pushing to the served snapshot (the proof moves production's pin on the
    branch): the pages' last blocks, on the sandbox, run meanwhile."""
    env.ahead_proof(KEY, lambda: run(env), after=(env.stage(doc_blocks.done_with("staging")),
                                                  env.stage(doc_blocks.done_with("production")),
                                                  env.stage(doc_blocks.DONE_PUSHING)))


def proof(env) -> None:
    """The proof: its result if ``start_ahead`` started it, or a run now."""
    env.proof_result(KEY, lambda: run(env))


def revision(poll: status.Poll, source) -> str:
    """The revision the platform source holds in a poll."""
    item = status.find(poll, source.kind, source.namespace, source.name)
    return ((item.get("status") or {}).get("artifact") or {}).get("revision", "")


def applied(poll: status.Poll, source) -> dict[str, str]:
    """name -> lastAppliedRevision of the Kustomizations built from the platform source."""
    return {
        k["metadata"]["name"]: (k.get("status") or {}).get("lastAppliedRevision", "")
        for k in poll.items
        if k.get("kind") == "Kustomization" and k["metadata"].get("namespace") == source.namespace
        and (k.get("spec") or {}).get("sourceRef", {}).get("name") == source.name
        and (k.get("spec") or {}).get("sourceRef", {}).get("kind") == source.kind
    }


def wait_revision(env, cluster, source, version: str, bound: float = RECONCILE_BOUND) -> None:
    """Until the platform source of ``cluster`` holds ``version`` (failing
    as soon as Flux fails for good)."""
    flux = status.watch(env, cluster)
    try:
        flux.until(lambda poll: revision(poll, source).split("@")[0] == version, bound,
                   f"holding {version} in {source.kind}/{source.name}")
    except TimeoutError as error:
        raise AssertionError(
            f"{cluster.target}: {source.where()} {source.kind}/{source.name} does not hold {version} within "
            f"{bound:.0f}s; see `flux get sources oci -A` in the artifacts\n{error}"
        ) from None


def expect_applied(env, cluster, source, version: str, bound: float = RECONCILE_BOUND) -> None:
    """Until every Kustomization built from the platform source has applied
    ``version`` and every Kustomization and HelmRelease is Ready. Everything
    was Ready on the previous release already, so readiness alone proves
    nothing: the layers apply the new revision one after the other
    (dependsOn)."""
    flux = status.watch(env, cluster)

    def done(poll: status.Poll) -> bool:
        revisions = applied(poll, source)
        return bool(revisions) and all(v.split("@")[0] == version for v in revisions.values()) and poll.all_ready()

    try:
        flux.until(done, bound, f"on {version} in every platform Kustomization, all Ready")
    except TimeoutError as error:
        raise AssertionError(
            f"{cluster.target}: the platform Kustomizations did not all apply {version} and become Ready within "
            f"{bound:.0f}s; see `flux get kustomizations -A` in the artifacts\n{error}"
        ) from None


def move_pin(env, production, old: str, new: str) -> None:
    clone = env.checkout(f"pin-{new}")
    env.runner.call(Step(["edit", "clusters/production", f"tag: {old} -> tag: {new}"],
                         note="move production's pin in the clone", in_process=True),
                    lambda: tree.move_pin(clone, old, new))
    git(env, clone, "commit", "--all", "--quiet", "--message", f"production: pin platform {new}",
        note=f"commit the pin {new}")
    git(env, clone, "push", "--quiet", "origin", "HEAD", note="push to the served snapshot (never the working tree)")
    # Fetch the commit now rather than at the source's interval; Flux does
    # the rest on its own (the root Kustomization applies the new pin as
    # soon as its source holds it), which the waits that follow watch.
    # Reconciling the root itself would also wait out its health check of
    # the platform source, polled every 5 s, for nothing the proof reads.
    flux_reconcile(env, production, "source", "git", "flux-system")


def run(env) -> None:
    pin = tree.production_pin(env.root)
    staging_source = tree.platform_source(env.root, "staging")
    production_source = tree.platform_source(env.root, "production")
    staging, production = env.cluster("staging"), env.cluster("production")
    for cluster in (staging, production):
        status.wait_all_ready(env, cluster, READY_BOUND)

    # The release carries a change to cert-manager's pods: a cluster that
    # takes it must replace them, one that does not must keep them.
    staging_pods = workloads.pods(env, staging, *workloads.CERT_MANAGER)
    production_pods = workloads.pods(env, production, *workloads.CERT_MANAGER)
    env.release(NEXT, change=lambda clone: workloads.annotate_release(clone, NEXT))
    side_by_side(lambda: flux_reconcile(env, staging, "source", "oci", staging_source.name,
                                        "-n", staging_source.namespace),
                 lambda: flux_reconcile(env, production, "source", "oci", production_source.name,
                                        "-n", production_source.namespace), at_once=env.live)

    def staging_follows() -> None:
        wait_revision(env, staging, staging_source, NEXT)
        expect_applied(env, staging, staging_source, NEXT)
        workloads.wait_replaced(env, staging, staging_pods, NEXT)

    def production_follows_its_pin() -> None:
        # Both sources have fetched since the release: production's still
        # holds its pin, whatever staging does meanwhile.
        wait_revision(env, production, production_source, pin)
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

    # The two clusters are independent from here: staging's wait for the
    # release overlaps production's pin moves.
    side_by_side(staging_follows, production_follows_its_pin, at_once=env.live)
