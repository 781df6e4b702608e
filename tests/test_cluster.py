"""The cluster tier: the tree reconciled on real clusters (kwok or kind), its proofs.

Requested with ``--cluster kind`` (``nox -s e2e``); where Docker, kind,
kubectl or flux is missing, every test here is skipped with the precise reason.
``--plan`` prints the commands instead (see ``cluster/plan.py``).
"""

from __future__ import annotations

import pytest

from cluster import names, preflight, tier
from cluster.environment import TierEnvironment
from cluster.scenarios import bootstrap, doc_blocks, flux_operator, private_fork, promotion, receiver, sandbox
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
    tier.LIVE_RUN.update(provider=provider, real=tier.REAL, simulated=env.provider.simulated,
                         clusters=env.made)
    # Every cluster the proofs use is made side by side, ahead of the test
    # that first needs it (each test still waits for, and reports on, its own).
    env.prepare(names.LONG_LIVED)
    sandbox.prepare_ahead(env)
    try:
        yield env
    finally:
        kept = env.close()
        if kept:
            print("\n--keep-cluster: kept " + "; ".join(kept) + ". Remove them with `nox -s cluster-clean`.")


@pytest.mark.parametrize("target", names.LONG_LIVED)
def test_cluster_bootstraps_and_every_object_is_ready(tier_env: TierEnvironment, target: str) -> None:
    with tier.artifacts_on_failure(tier_env, f"bootstrap-{target}"):
        bootstrap.run(tier_env, target)


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



# After the page blocks, whose transcripts show clusters in the state a
# reader's are in: only the walkthrough's own releases published.
def test_promotion_staging_follows_range_production_follows_pin(tier_env: TierEnvironment) -> None:
    with tier.artifacts_on_failure(tier_env, "promotion"):
        promotion.run(tier_env)

# After the page blocks: the reconciliation page's block has made the token.
def test_receiver_turns_a_signed_push_into_a_reconciliation(tier_env: TierEnvironment) -> None:
    with tier.artifacts_on_failure(tier_env, "receiver"):
        receiver.run(tier_env)


# Proofs on clusters of their own, made after the others are idle and deleted
# as soon as they pass.
def test_private_fork_bootstraps_over_ssh_with_a_deploy_key(tier_env: TierEnvironment) -> None:
    with tier.artifacts_on_failure(tier_env, "private-fork"):
        private_fork.run(tier_env)


def test_flux_operator_brings_a_cluster_to_bootstraps_state(tier_env: TierEnvironment) -> None:
    problem = tier_env.provider.operator_problem()
    if problem:
        pytest.skip(problem)
    with tier.artifacts_on_failure(tier_env, "flux-operator"):
        flux_operator.run(tier_env)
