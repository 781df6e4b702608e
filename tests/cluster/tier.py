"""Entry points the pytest layer and ``python -m cluster`` share: whether the
tier is requested and can run, the live environment, the plan, and artifact
collection on failure."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from harness.model import PROJECT_ROOT

from . import artifacts, names, plan, preflight
from .environment import TierEnvironment
from .scenarios import bootstrap, doc_blocks, flux_operator, private_fork, promotion, receiver, sandbox

ENV_PROVIDER = "DOCS_TEST_CLUSTER"  # same as --cluster, for runs without the plugin
NOT_REQUESTED = (
    "cluster tier not requested: run `nox -s e2e` (pytest: -p cluster.plugin --cluster kwok|kind|auto); "
    "kwok needs the toolchain (`nox -s tools -- --tier kwok`), kind needs Docker"
)


# What the last live run used, for the report (set by the test fixture).
LIVE_RUN: dict = {}
REAL = ("etcd, kube-apiserver with its admission (Pod Security, ValidatingAdmissionPolicy), "
        "kube-controller-manager, kube-scheduler, and the Flux controllers: fetching from git and OCI, "
        "kustomize builds, substitution, server-side apply, health checks, dependsOn, Helm installs and "
        "upgrades, pruning, finalisers, garbage collection")


def explicitly_requested(config) -> bool:
    """True when the run names a provider (not ``auto``): then a tier that
    cannot run fails instead of being skipped."""
    name = config.getoption("--cluster", default=None) or os.environ.get(ENV_PROVIDER) or None
    return bool(name) and name != "auto"


def requested_provider(config) -> str | None:
    """The provider ``--cluster`` (or $DOCS_TEST_CLUSTER) names; ``auto`` is
    kind where a Docker engine answers and kwok elsewhere."""
    name = config.getoption("--cluster", default=None) or os.environ.get(ENV_PROVIDER) or None
    if name == "auto":
        return preflight.default_provider()
    return name


def cluster_blocks(root: Path = PROJECT_ROOT) -> list:
    """The blocks the pages render (the harness's extraction)."""
    from harness import extract

    return extract.collect(root)


def build_plan(root: Path = PROJECT_ROOT, provider: str = "kind", blocks: list | None = None,
               found: preflight.Preflight | None = None) -> str:
    """The full command sequence of a run, from the same code a run executes."""
    found = found or preflight.check(check_engine=False, provider=provider)
    env = TierEnvironment(root, provider, found, live=False)
    for target in names.LONG_LIVED:
        bootstrap.run(env, target)
    sandbox.start(env)  # the page blocks use the sandbox it makes, and clean it down
    doc_blocks.run(env, cluster_blocks(root) if blocks is None else blocks)
    sandbox.finish(env)
    promotion.run(env)  # after the page blocks, which show a reader's releases only
    receiver.run(env)
    private_fork.run(env)
    if not env.provider.operator_problem():
        flux_operator.run(env)
    env.close()
    return plan.render(env.runner.steps)


@contextlib.contextmanager
def artifacts_on_failure(env: TierEnvironment, label: str):
    """Run the body; if it fails, collect artifacts and name the folder."""
    try:
        yield
    except BaseException as err:
        if env.live and env.clusters:
            dest = artifacts.collect(artifacts.folder(env.root, label), list(env.clusters.values()),
                                     env.runner, env.tool("flux"), env.tool("kubectl"),
                                     host_logs=env.provider.controller_logs)
            note = (f"cluster artifacts (flux get all -A, events, controller logs): {dest}\n"
                    "rerun with --keep-cluster to inspect the clusters themselves")
            print(note, file=sys.stderr)
            if hasattr(err, "add_note"):
                err.add_note(note)
        raise
