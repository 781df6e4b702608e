"""The cluster tier: the tree reconciled on real clusters (kwok or kind), its proofs.

Requested with ``--cluster kwok`` or ``--cluster kind`` (``nox -s e2e``);
``--plan`` prints the commands instead (see ``cluster/plan.py``). Each test
names the clusters it needs (``pytest.mark.cluster``): the session makes
those, and only those, side by side ahead of the tests. A failure of the
setup or of Flux on a cluster is reported by the first test that meets it;
the tests that need the same part are marked not run for it
(``cluster.tier.proof``).
"""

from __future__ import annotations

import pytest

from cluster import names, preflight, tier
from cluster.environment import TierEnvironment
from cluster.scenarios import (bootstrap, doc_blocks, flux_operator, private_fork, promotion, receiver, sandbox,
                               workloads)
from harness.model import PROJECT_ROOT
from harness.report import fail_on

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def tier_session(request: pytest.FixtureRequest):
    """The tier's environment, or ``tier.Unavailable`` when the tier was
    asked for and cannot run (each test reports or skips for it). Taken
    down after this module's last test, so the tests of other modules that
    start clusters of their own have the machine to themselves."""
    config = request.config
    provider = tier.requested_provider(config)
    if not provider:
        pytest.skip(tier.NOT_REQUESTED)
    if config.getoption("--plan", default=False):
        pytest.skip("--plan: the command sequence is printed at the end of the run; nothing was run")
    found = preflight.check(provider=provider)
    if not found.ok:
        if tier.explicitly_requested(config):
            # `--cluster kwok` asks for the tier: missing tools are a failure
            # (with what to do), not a skip that would let a run pass unproven.
            yield tier.Unavailable(found.skip_reason() + f" (--cluster {provider} was asked for)")
            return
        pytest.skip(found.skip_reason())
    env = TierEnvironment(PROJECT_ROOT, provider, found, live=True,
                          keep=bool(config.getoption("--keep-cluster", default=False)))
    tier.LIVE_RUN.update(provider=provider, real=getattr(env.provider, "real", tier.REAL), simulated=env.provider.simulated,
                         clusters=env.made, notes=getattr(env.provider, "notes", []))
    # The clusters the selected tests need are made side by side, ahead of
    # the first test that needs each (which waits for, and reports on, it).
    needed = tier.needed_clusters(request.session.items)
    env.prepare([t for t in needed if t in names.LONG_LIVED])
    if names.SANDBOX in needed:
        sandbox.prepare_ahead(env)
    if env.provider.proofs_ahead:
        items = request.session.items
        ahead = {m.args[0] for item in items for m in item.iter_markers("ahead")}
        if not any(tier.PAGE_CLUSTERS in m.args for item in items for m in item.iter_markers("cluster")):
            doc_blocks.done(env)  # no page blocks to wait for
        starts = {private_fork.KEY: private_fork.start_ahead, flux_operator.KEY: flux_operator.start_ahead,
                  sandbox.FOLLOWS: sandbox.start_ahead, sandbox.CLEANED: sandbox.finish_ahead,
                  receiver.KEY: receiver.start_ahead, promotion.KEY: promotion.start_ahead}
        for key, start in starts.items():
            if key in ahead:
                start(env)
    try:
        yield env
    finally:
        kept = env.close()
        if getattr(env.provider, "egress_result", ""):
            tier.LIVE_RUN["real"] += "; " + env.provider.egress_result
        if kept:
            print("\n--keep-cluster: kept " + "; ".join(kept) + ". Remove them with `nox -s cluster-clean`.")


@pytest.fixture
def tier_env(tier_session, request: pytest.FixtureRequest) -> TierEnvironment:
    if isinstance(tier_session, tier.Unavailable):
        tier_session.report(request.node.nodeid)
    return tier_session


@pytest.mark.parametrize("target", names.LONG_LIVED)
def test_cluster_bootstraps_and_every_object_is_ready(tier_env: TierEnvironment, target: str, request) -> None:
    with tier.proof(tier_env, f"bootstrap-{target}", request.node.nodeid):
        bootstrap.run(tier_env, target)


@pytest.mark.parametrize("target", names.LONG_LIVED)
def test_podinfo_answers_over_its_service_and_tls(tier_env: TierEnvironment, target: str, request) -> None:
    """What only running pods prove: podinfo answers over its Service with
    the tree's message, over the certificate cert-manager issued."""
    if not tier_env.provider.runs_pods:
        pytest.skip(f"the {tier_env.provider.name} provider runs no pod (its pods are simulated)")
    with tier.proof(tier_env, f"podinfo-{target}", request.node.nodeid):
        workloads.podinfo_over_tls(tier_env, target)


@pytest.mark.cluster("development")
def test_a_packet_headed_off_the_machine_is_dropped_and_counted(tier_env: TierEnvironment, request) -> None:
    """The egress guard's own check, shown failing on purpose: a pod's
    request to an address off the machine is counted and dropped on the
    host (the run's final check fails on any such packet but the probe's)."""
    if not tier_env.provider.runs_pods:
        pytest.skip(f"the {tier_env.provider.name} provider runs no pod (nothing of it can send a packet)")
    if not tier_env.provider.guard.rule:
        pytest.skip("; ".join(tier_env.provider.guard.notes) or "the egress guard is not installed")
    with tier.proof(tier_env, "egress-probe", request.node.nodeid):
        probe, dropped = workloads.egress_probe(tier_env, "development")
    assert probe > 0, "the probe pod's packets never reached the host's forwarding path: the probe proved nothing"
    assert dropped >= probe, f"the guard dropped {dropped} packets, fewer than the probe's {probe}: some left"


# The sandbox proof is split around the page blocks: it makes the sandbox
# cluster the way the pages do (from a cloned directory on a work branch) and
# proves it follows its branch; the pages' `cluster sandbox` blocks then run
# on that cluster, their clean-down included; and the last test proves the
# clean-down left nothing stuck in deletion and returns the change. Where
# proofs run ahead, each half runs in the background: the first once the
# sandbox is made (the pages' sandbox blocks wait for it), the second once
# the page blocks are done with the sandbox.
@pytest.mark.cluster(names.SANDBOX)
@pytest.mark.ahead(sandbox.FOLLOWS)
def test_sandbox_follows_its_work_branch(tier_env: TierEnvironment, request) -> None:
    with tier.proof(tier_env, "sandbox", request.node.nodeid):
        sandbox.follows(tier_env)


@pytest.mark.cluster(tier.PAGE_CLUSTERS)
def test_cluster_blocks_run_in_page_order(tier_env: TierEnvironment, report, request) -> None:
    with doc_blocks.then_done(tier_env):  # the proofs waiting for the pages go on, whatever happens here
        blocks = tier.cluster_blocks()
        if not doc_blocks.by_page(blocks):
            pytest.skip("no page has a <!-- test: cluster NAME --> block")
        with tier.proof(tier_env, "cluster-blocks", request.node.nodeid):
            findings = report.add(doc_blocks.run(tier_env, blocks, test=request.node.nodeid))
            fail_on(findings)


@pytest.mark.cluster(names.SANDBOX)
@pytest.mark.ahead(sandbox.CLEANED)
def test_sandbox_clean_down_leaves_no_dangling_finalisers(tier_env: TierEnvironment, request) -> None:
    with tier.proof(tier_env, "sandbox-clean-down", request.node.nodeid):
        sandbox.cleaned(tier_env)


# After the page blocks, whose transcripts show clusters in the state a
# reader's are in: only the walkthrough's own releases published. On a
# provider that runs proofs ahead, it runs in the background from when the
# page blocks are done with staging and production and with pushing.
@pytest.mark.cluster("staging", "production")
@pytest.mark.ahead(promotion.KEY)
def test_promotion_staging_follows_range_production_follows_pin(tier_env: TierEnvironment, request) -> None:
    with tier.proof(tier_env, "promotion", request.node.nodeid):
        promotion.proof(tier_env)


# After the page blocks on development: the reconciliation page's block has
# made the token (in the background, as the promotion, where proofs run ahead).
@pytest.mark.cluster("development")
@pytest.mark.ahead(receiver.KEY)
def test_receiver_turns_a_signed_push_into_a_reconciliation(tier_env: TierEnvironment, request) -> None:
    with tier.proof(tier_env, "receiver", request.node.nodeid):
        receiver.proof(tier_env)


# Proofs on clusters of their own, deleted as soon as they pass. On a
# provider that runs them ahead (``Provider.proofs_ahead``: kwok and kind),
# they run in the background, one after the other, from when the long-lived
# clusters are made (the Flux Operator's is caught up with main before it
# compares); elsewhere both are made after the others are idle.
@pytest.mark.ahead(private_fork.KEY)
def test_private_fork_bootstraps_over_ssh_with_a_deploy_key(tier_env: TierEnvironment, request) -> None:
    with tier.proof(tier_env, "private-fork", request.node.nodeid):
        private_fork.proof(tier_env)


@pytest.mark.cluster("staging")
@pytest.mark.ahead(flux_operator.KEY)
def test_flux_operator_brings_a_cluster_to_bootstraps_state(tier_env: TierEnvironment, request) -> None:
    problem = tier_env.provider.operator_problem()
    if problem:
        pytest.skip(problem)
    with tier.proof(tier_env, "flux-operator", request.node.nodeid):
        flux_operator.proof(tier_env)
