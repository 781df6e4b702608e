"""The cluster tier: the tree reconciled on real clusters (kind), four proofs.

Requested with ``--cluster kind`` (``nox -s e2e``); where Docker, kind,
kubectl or flux is missing, every test here is skipped with the precise reason.
``--plan`` prints the commands instead (see ``cluster/plan.py``).
"""

from __future__ import annotations

import pytest

from cluster import names, preflight, tier
from cluster.environment import TierEnvironment
from cluster.scenarios import bootstrap, doc_blocks, promotion, sandbox, workloads
from harness.model import PROJECT_ROOT
from harness.report import fail_on

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="session")
def tier_env(request: pytest.FixtureRequest):
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
            pytest.fail(found.skip_reason() + f" (--cluster {provider} was asked for)", pytrace=False)
        pytest.skip(found.skip_reason())
    env = TierEnvironment(PROJECT_ROOT, provider, found, live=True,
                          keep=bool(config.getoption("--keep-cluster", default=False)))
    tier.LIVE_RUN.update(provider=provider, real=getattr(env.provider, "real", tier.REAL), simulated=env.provider.simulated,
                         clusters=env.made)
    # Every cluster the proofs use is made side by side, ahead of the test
    # that first needs it (each test still waits for, and reports on, its own).
    env.prepare(names.LONG_LIVED)
    sandbox.prepare_ahead(env)
    try:
        yield env
    finally:
        kept = env.close()
        if getattr(env.provider, "egress_result", ""):
            tier.LIVE_RUN["real"] += "; " + env.provider.egress_result
        if kept:
            print("\n--keep-cluster: kept " + "; ".join(kept) + ". Remove them with `nox -s cluster-clean`.")


@pytest.mark.parametrize("target", names.LONG_LIVED)
def test_cluster_bootstraps_and_every_object_is_ready(tier_env: TierEnvironment, target: str) -> None:
    with tier.artifacts_on_failure(tier_env, f"bootstrap-{target}"):
        bootstrap.run(tier_env, target)


@pytest.mark.parametrize("target", names.LONG_LIVED)
def test_podinfo_answers_over_its_service_and_tls(tier_env: TierEnvironment, target: str) -> None:
    """What only running pods prove: podinfo answers over its Service with
    the tree's message, over the certificate cert-manager issued."""
    if not tier_env.provider.runs_pods:
        pytest.skip(f"the {tier_env.provider.name} provider runs no pod (its pods are simulated)")
    with tier.artifacts_on_failure(tier_env, f"podinfo-{target}"):
        workloads.podinfo_over_tls(tier_env, target)


def test_a_packet_headed_off_the_machine_is_dropped_and_counted(tier_env: TierEnvironment) -> None:
    """The egress guard's own check, shown failing on purpose: a pod's
    request to an address off the machine is counted and dropped on the
    host (the run's final check fails on any such packet but the probe's)."""
    if not tier_env.provider.runs_pods:
        pytest.skip(f"the {tier_env.provider.name} provider runs no pod (nothing of it can send a packet)")
    if not tier_env.provider.guard.rule:
        pytest.skip("; ".join(tier_env.provider.guard.notes) or "the egress guard is not installed")
    with tier.artifacts_on_failure(tier_env, "egress-probe"):
        probe, dropped = workloads.egress_probe(tier_env, "development")
    assert probe > 0, "the probe pod's packets never reached the host's forwarding path: the probe proved nothing"
    assert dropped >= probe, f"the guard dropped {dropped} packets, fewer than the probe's {probe}: some left"


def test_promotion_staging_follows_range_production_follows_pin(tier_env: TierEnvironment) -> None:
    with tier.artifacts_on_failure(tier_env, "promotion"):
        promotion.run(tier_env)


# The sandbox proof is split around the page blocks: it makes the sandbox
# cluster the way the pages do (from a cloned directory on a work branch) and
# proves it follows its branch; the pages' `cluster sandbox` blocks then run
# on that cluster, their clean-down included; and the last test proves the
# clean-down left nothing stuck in deletion and returns the change.
def test_sandbox_follows_its_work_branch(tier_env: TierEnvironment) -> None:
    with tier.artifacts_on_failure(tier_env, "sandbox"):
        sandbox.start(tier_env)


def test_cluster_blocks_run_in_page_order(tier_env: TierEnvironment, report) -> None:
    blocks = tier.cluster_blocks()
    if not doc_blocks.by_page(blocks):
        pytest.skip("no page has a <!-- test: cluster NAME --> block")
    with tier.artifacts_on_failure(tier_env, "cluster-blocks"):
        findings = report.add(doc_blocks.run(tier_env, blocks))
        fail_on(findings)


def test_sandbox_clean_down_leaves_no_dangling_finalisers(tier_env: TierEnvironment) -> None:
    with tier.artifacts_on_failure(tier_env, "sandbox-clean-down"):
        sandbox.finish(tier_env)
