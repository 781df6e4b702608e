"""Entry points the pytest layer and ``python -m cluster`` share: whether the
tier is requested and can run, the live environment, the plan, and artifact
collection on failure."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from harness.model import PROJECT_ROOT

from . import artifacts, names, plan, preflight
from .environment import TierEnvironment
from .runner import to_console
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


# In ``pytest.mark.cluster(...)``: the clusters the pages' cluster blocks name.
PAGE_CLUSTERS = "the pages' clusters"


def needed_clusters(items) -> list[str]:
    """The clusters the selected tests need, in ``names.ALL_CLUSTERS``
    order: what each names in ``pytest.mark.cluster(...)`` (or its
    ``target`` parameter; ``PAGE_CLUSTERS`` for those the pages' blocks
    name). A test of the tier that names none needs none."""
    wanted: set[str] = set()
    for item in items:
        marker = item.get_closest_marker("cluster")
        if marker is None:
            continue
        params = getattr(getattr(item, "callspec", None), "params", {})
        if params.get("target") in names.ALL_CLUSTERS:
            wanted.add(params["target"])
        for arg in marker.args:
            if arg == PAGE_CLUSTERS:
                from .scenarios import doc_blocks

                wanted.update(doc_blocks.clusters_named(cluster_blocks()))
            elif arg in names.ALL_CLUSTERS:
                wanted.add(arg)
    return [t for t in names.ALL_CLUSTERS if t in wanted]


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
    private_fork.proof(env)
    if not env.provider.operator_problem():
        flux_operator.proof(env)
    env.close()
    return plan.render(env.runner.steps)


@contextlib.contextmanager
def artifacts_on_failure(env: TierEnvironment, label: str):
    """Run the body; if it fails, collect artifacts and name the folder."""
    try:
        yield
    except BaseException as err:
        note = collect_artifacts(env, label)
        if note and hasattr(err, "add_note"):
            err.add_note(note)
        raise


def collect_artifacts(env: TierEnvironment, label: str) -> str:
    """Collect the artifacts of every cluster; returns the note that names
    the folder ('' when there is nothing to collect)."""
    if not (env.live and env.clusters):
        return ""
    dest = artifacts.collect(artifacts.folder(env.root, label), list(env.clusters.values()),
                             env.runner, env.tool("flux"), env.tool("kubectl"),
                             host_logs=env.provider.controller_logs)
    note = (f"cluster artifacts (flux get all -A, events, controller logs): {dest}\n"
            "rerun with --keep-cluster to inspect the clusters themselves")
    to_console(note)
    return note


# -- one failure, reported once -----------------------------------------------
#
# A failure of the tier's setup, or of Flux on a cluster, concerns every test
# that needs that part. The first test to meet it reports it (the message
# says what failed, why and where); every later one is marked not run for
# that reason instead of repeating it.

REPORTED = "_cluster_tier_reported_by"


def first_cause(error: BaseException) -> BaseException:
    """The error a report is about: an ``AlreadyFailed`` stands for the
    failure it refers to."""
    return getattr(error, "first", None) or error


def reported_by(error: BaseException) -> str | None:
    return getattr(first_cause(error), REPORTED, None)


def mark_reported(error: BaseException, test: str) -> None:
    try:
        setattr(first_cause(error), REPORTED, test)
    except AttributeError:  # an exception type without a __dict__: reported again, never lost
        pass


def summary(error: BaseException) -> str:
    """The first line of an error's message."""
    text = str(first_cause(error)).strip()
    return text.split("\n", 1)[0] if text else type(error).__name__


def not_run_reason(error: BaseException) -> str | None:
    """'not run: ...' when ``error`` was reported by another test already."""
    who = reported_by(error)
    return f"not run: {summary(error)} (reported by {who})" if who else None


def reported_once(error: BaseException) -> bool:
    """Whether ``error`` is one a test reports once for every test that
    needs the same part (setup, a cluster Flux failed on)."""
    from .environment import SetupFailed
    from .status import AlreadyFailed, FluxFailed

    return isinstance(error, (SetupFailed, FluxFailed, AlreadyFailed))


@contextlib.contextmanager
def proof(env: TierEnvironment, label: str, test: str):
    """Run one proof of the tier (``test`` is the pytest node id). A failure
    of the setup or of Flux on a cluster is reported by the first test that
    meets it, with its message only (where, what, why: no traceback) and the
    artifacts; later tests are skipped as not run for it. Anything else
    fails as it is, with the artifacts."""
    import pytest

    try:
        yield
    except Exception as err:  # pytest's own outcomes are BaseException: they pass
        if not reported_once(err):
            note = collect_artifacts(env, label)
            if note and hasattr(err, "add_note"):
                err.add_note(note)
            raise
        reason = not_run_reason(err)
        if reason:
            pytest.skip(reason)
        mark_reported(err, test)
        note = collect_artifacts(env, label)
        # Said once: without ``from None`` pytest prints the error it replaces
        # above it ("During handling of the above exception, ...").
        raise pytest.fail.Exception(f"{first_cause(err)}" + (f"\n{note}" if note else ""), pytrace=False) from None


class Unavailable:
    """The tier was asked for but cannot run (preflight): reported by the
    first test, the others are marked not run for it."""

    def __init__(self, message: str):
        self.message = message
        self.reported_by: str | None = None

    def report(self, test: str) -> None:
        import pytest

        if self.reported_by is not None:
            pytest.skip(f"not run: {self.message.splitlines()[0]} (reported by {self.reported_by})")
        self.reported_by = test
        pytest.fail(self.message, pytrace=False)
