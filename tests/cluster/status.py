"""Waiting for Flux on a cluster, and stopping as soon as waiting is pointless.

``FluxWatch`` is the one way the tier waits for Flux (the scenarios, the
bootstrap of every provider): each poll reads every Flux object of the
cluster and asks ``failures.judge`` whether one has failed in a way waiting
cannot heal; the first such failure ends the wait with ``FluxFailed``,
which names each failed object with its own message, the tree line that
defines it and the page line that shows it (``locate``). Otherwise the wait
ends when ``done`` says so, or raises ``TimeoutError`` at its bound with
what was still not Ready.

    watch = FluxWatch(cluster, runner, kubectl, locator=env.locator)
    watch.until(lambda poll: poll.all_ready(), bound=600, what="every Kustomization and HelmRelease Ready")
    watch.check()  # one poll: raise FluxFailed if something failed for good

``wait_all_ready(env, cluster)`` is the common case. A cluster that failed
once is not waited for again: ``env.failed`` keeps its ``FluxFailed``, and a
later wait on it raises ``AlreadyFailed`` at once (the pytest layer reports
the first as a failure, the rest as not run).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Callable

from . import failures
from .plan import Step
from .providers import Cluster, kube_args
from .runner import Recorder

KINDS = "kustomizations.kustomize.toolkit.fluxcd.io,helmreleases.helm.toolkit.fluxcd.io"
# What a poll reads: the objects whose readiness is waited for, and the
# sources they stand on (judged, not waited for).
WATCHED = KINDS + (",gitrepositories.source.toolkit.fluxcd.io,ocirepositories.source.toolkit.fluxcd.io,"
                   "helmrepositories.source.toolkit.fluxcd.io,helmcharts.source.toolkit.fluxcd.io")
# What a poll reads while the Flux Operator installs Flux (the Flux kinds do
# not exist yet): its FluxInstance, judged like a Flux object.
OPERATOR_KINDS = "fluxinstances.fluxcd.controlplane.io"
READY_KINDS = ("Kustomization", "HelmRelease")
POLL = 1.0  # seconds between polls
# A file to append what each poll saw failing to (see FluxWatch.log); unset: none.
WATCH_LOG = os.environ.get("GWP_FLUX_WATCH_LOG", "")
SETTLE = 3  # without the tree's list of objects: polls the Ready set must stay the same


@dataclass(frozen=True)
class ObjectState:
    kind: str
    namespace: str
    name: str
    ready: bool
    message: str

    def __str__(self) -> str:
        state = "Ready" if self.ready else "not Ready"
        return f"{self.kind} {self.namespace}/{self.name}: {state}{': ' + self.message if self.message else ''}"


def is_ready(item: dict) -> bool:
    """Ready=True for the object's latest generation (an older Ready says
    nothing about the spec now in the cluster)."""
    ready = failures.condition(item, "Ready")
    if ready.get("status") != "True":
        return False
    generation = (item.get("metadata") or {}).get("generation")
    observed = (item.get("status") or {}).get("observedGeneration")
    return generation is None or observed is None or observed >= generation


def states(listing: dict) -> list[ObjectState]:
    """From ``kubectl get ... -o json``, each Kustomization's and
    HelmRelease's readiness."""
    out = []
    for item in listing.get("items", []):
        if item.get("kind") not in READY_KINDS:
            continue
        meta = item.get("metadata", {})
        ready = failures.condition(item, "Ready")
        message = ready.get("message", "no Ready condition yet")
        if ready.get("status") == "True" and not is_ready(item):
            message = "Ready for an older generation; the latest is not reconciled yet"
        out.append(ObjectState(item.get("kind", "?"), meta.get("namespace", ""), meta.get("name", "?"),
                               is_ready(item), message))
    return out


@dataclass
class Poll:
    """One reading of a cluster's Flux objects."""

    items: list[dict]
    states: list[ObjectState]
    expected: frozenset = frozenset()  # (kind, namespace, name) the tree says the cluster has

    def missing(self) -> list[str]:
        present = {(s.kind, s.namespace, s.name) for s in self.states}
        return [f"{k} {ns}/{n}: not created yet" for k, ns, n in sorted(self.expected - present)]

    def all_ready(self) -> bool:
        return bool(self.states) and all(s.ready for s in self.states) and not self.missing()

    def waiting(self) -> list[str]:
        return [str(s) for s in self.states if not s.ready] + self.missing()


class FluxFailed(AssertionError):
    """Flux failed on a cluster in a way waiting cannot heal. The message
    names each failed object with its message, tree line and page line."""

    def __init__(self, target: str, found: list[failures.Failure], text: str):
        super().__init__(text)
        self.target, self.failures = target, found


class AlreadyFailed(RuntimeError):
    """A wait on a cluster whose failure was reported already."""

    def __init__(self, target: str, first: BaseException):
        summary = str(first).split("\n", 1)[0]
        super().__init__(f"{target} failed already: {summary}")
        self.target, self.first = target, first


class FluxWatch:
    """Polls one cluster's Flux objects; see the module docstring."""

    def __init__(self, cluster: Cluster, runner: Recorder, kubectl: str, locator=None,
                 expected: frozenset = frozenset(), failed: dict | None = None, interval: float = POLL,
                 pending=None, kinds: str = WATCHED):
        self.cluster, self.runner, self.kubectl = cluster, runner, kubectl
        # pending(item): an object not to judge yet (bootstrap's committed
        # flux-system source, which bootstrap is about to replace).
        self.pending = pending
        self.kinds = kinds  # what a poll reads (kubectl get KINDS)
        self.locator, self.expected, self.interval = locator, expected, interval
        self.failed = failed if failed is not None else {}  # target -> FluxFailed, shared by a run
        self.tracker = failures.Tracker()
        self.started = time.monotonic()
        self.last_error = ""

    def step(self) -> Step:
        return Step([self.kubectl, *kube_args(self.cluster), "get", self.kinds, "--all-namespaces", "-o", "json"],
                    note=f"{self.cluster.target}: poll the Flux objects until every Kustomization and HelmRelease "
                         "is Ready, or one fails for good",
                    timeout=60)

    def poll(self) -> Poll | None:
        """One reading (None when the cluster did not answer); raises
        ``FluxFailed`` when an object failed for good."""
        proc = self.runner.run(self.step(), check=False)
        if not self.runner.live:
            return None
        if proc.returncode != 0:
            self.last_error = (proc.stderr or proc.stdout).strip()[-300:]
            return None
        listing = json.loads(proc.stdout or "{}")
        events = self.warning_events() if failures.needs_events(listing) else []
        judged = listing
        if self.pending is not None:
            judged = {**listing, "items": [i for i in listing.get("items", []) if not self.pending(i)]}
        found = failures.judge_all(judged, events, self.tracker)
        if WATCH_LOG:
            self.log(listing, events, found)
        if found:
            self.fail(found)
        return Poll(listing.get("items", []), states(listing), self.expected)

    def check(self) -> None:
        """One poll, for its failures only (while something else waits)."""
        if self.cluster.target in self.failed:
            raise AlreadyFailed(self.cluster.target, self.failed[self.cluster.target])
        self.poll()

    def log(self, listing: dict, events: list[dict], found: list) -> None:
        """Append every failing object of this poll, and the verdict, to
        $GWP_FLUX_WATCH_LOG (JSON lines): to see which failures a run meets
        and how close each came to ending a wait."""
        counts = failures.warning_counts(events)
        with open(WATCH_LOG, "a", encoding="utf-8") as out:
            for item in listing.get("items", []):
                failed = failures.failed_condition(item)
                ready = failures.condition(item, "Ready")
                if not failed:
                    if ready.get("status") == "True":  # when each object became Ready, as Flux says
                        out.write(json.dumps({"t": round(time.monotonic() - self.started, 1),
                                              "cluster": self.cluster.target, "object": str(failures.ref_of(item)),
                                              "ready_since": ready.get("lastTransitionTime")}) + "\n")
                    continue
                ref = failures.ref_of(item)
                out.write(json.dumps({"t": round(time.monotonic() - self.started, 1), "cluster": self.cluster.target,
                                      "object": str(ref), "condition": failed, "events": counts.get(ref, []),
                                      "failed": any(f.obj == ref for f in found)}) + "\n")

    def warning_events(self) -> list[dict]:
        proc = self.runner.run(Step([self.kubectl, *kube_args(self.cluster), "get", "events", "--all-namespaces",
                                     "--field-selector=type=Warning", "-o", "json"], timeout=60), check=False)
        if proc.returncode != 0:
            return []
        return json.loads(proc.stdout or "{}").get("items", [])

    def fail(self, found: list[failures.Failure]) -> None:
        error = FluxFailed(self.cluster.target, found, explain(self.cluster.target, found, self.locator,
                                                               time.monotonic() - self.started))
        self.failed.setdefault(self.cluster.target, error)
        raise error

    def until(self, done: Callable[[Poll], bool], bound: float, what: str) -> Poll | None:
        """Poll until ``done(poll)``; ``FluxFailed`` as soon as an object
        fails for good, ``TimeoutError`` after ``bound`` seconds."""
        if self.cluster.target in self.failed:
            raise AlreadyFailed(self.cluster.target, self.failed[self.cluster.target])
        if not self.runner.live:
            self.poll()
            return None
        deadline = time.monotonic() + bound
        current = None
        while True:
            got = self.poll()
            if got is not None:
                current = got
                if done(got):
                    return got
            if time.monotonic() > deadline:
                waiting = current.waiting() if current is not None else []
                if not waiting:
                    waiting = [f"the cluster did not answer: {self.last_error}" if self.last_error
                               else "no Kustomization or HelmRelease exists yet"]
                raise TimeoutError(f"{self.cluster.target}: not {what} within {bound:.0f}s:\n  "
                                   + "\n  ".join(waiting))
            time.sleep(self.interval)


def watch(env, cluster: Cluster, expected: bool = True) -> FluxWatch:
    """A ``FluxWatch`` of a cluster of the tier's environment: its locator,
    the objects the tree says the cluster has, and its record of clusters
    that failed already."""
    objects = frozenset()
    if expected and env.live:
        objects = expected_objects(env.root, cluster.target)
    return FluxWatch(cluster, env.runner, env.tool("kubectl"), locator=getattr(env, "locator", None),
                     expected=objects, failed=getattr(env, "failed", None))


def wait_all_ready(env, cluster: Cluster, bound: float) -> list[ObjectState]:
    """Until every Kustomization and HelmRelease of the cluster (each one the
    tree defines for it, and any other there) is Ready."""
    flux = watch(env, cluster)
    settled = Settled()
    done = (lambda poll: poll.all_ready()) if flux.expected else settled
    poll = flux.until(done, bound, "every Kustomization and HelmRelease Ready")
    return poll.states if poll is not None else []


@dataclass
class Settled:
    """Without the tree's list of objects: all Ready, and the same set for
    ``SETTLE`` polls in a row (the root Kustomization creates the others)."""

    last: list = field(default_factory=list)
    stable: int = 0

    def __call__(self, poll: Poll) -> bool:
        names = sorted((s.kind, s.namespace, s.name) for s in poll.states)
        if poll.all_ready():
            self.stable = self.stable + 1 if names == self.last else 1
        else:
            self.stable = 0
        self.last = names
        return self.stable >= SETTLE


def expected_objects(root, target: str) -> frozenset:
    """(kind, namespace, name) of every Kustomization and HelmRelease the
    tree gives the cluster (``flux_render``); empty when it cannot tell."""
    from harness.checks import flux_render

    from .locate import cluster_dir

    try:
        render = flux_render.render_all(root).get(cluster_dir(target))
    except Exception:  # noqa: BLE001 - without it the wait settles instead
        return frozenset()
    if render is None or any(i.skipped for i in render.issues):
        return frozenset()
    return frozenset((o.kind, o.namespace, o.name) for o in render.objects if o.kind in READY_KINDS
                     and str(o.data.get("apiVersion", "")).split("/")[0].endswith("toolkit.fluxcd.io"))


def explain(target: str, found: list[failures.Failure], locator, after: float) -> str:
    """The message of ``FluxFailed``: per failed object, where it is written
    and shown, Flux's own message, and why waiting cannot help."""
    lines = [f"{target}: {len(found)} Flux object{'s' if len(found) > 1 else ''} failed, and waiting will not "
             f"change that (found {after:.0f}s into the wait):"]
    for failure in sorted(found, key=_root_first):
        place = locator.where(target, failure.obj, failure.field) if locator is not None else None
        subject = failure.obj
        if failure.rejected is not None:
            rejected = locator.where(target, failure.rejected) if locator is not None else None
            lines.append(f"  {rejected or failure.rejected}: {failure.rejected} is rejected by the API server, "
                         f"applied by {failure.obj}" + (f" ({place})" if place else ""))
            lines.append(f"    {failure.message}")
        else:
            lines.append(f"  {place or '(not in the tree)'}: {subject}: {failure.message}")
        revision = f", revision {failure.revision}" if failure.revision else ""
        age = failure.age()
        reported = f"; reported {age:.0f}s before this report" if age is not None else ""
        lines.append(f"    Flux: reason {failure.reason}{revision}{reported}; {failure.why}")
        hint = HINTS.get(failure.rule if failure.rule != "failing again" else failure.reason)
        if hint:
            lines.append(f"    {hint}")
    return "\n".join(lines)


def _root_first(failure: failures.Failure) -> int:
    """Sources, then HelmReleases, then Kustomizations: what a later object
    stands on is the likelier cause."""
    order = {k: 0 for k in failures.SOURCE_KINDS}
    order.update(HelmRelease=1, Kustomization=2)
    return order.get(failure.obj.kind, 3)


HINTS = {
    "path not found": "fix spec.path: it is relative to the root of the source's artifact",
    "rejected": "fix the manifest; `kubectl apply --dry-run=server -f FILE` against a cluster shows the same",
    "build failed": "`kustomize build` of the Kustomization's path, with its postBuild variables, shows the same",
    "OCIArtifactPullFailed": "the registry has no artifact at that tag or range: check spec.ref against what is "
                             "published",
    "ReadOperationFailed": "no tag the registry lists matches spec.ref: check the range against what is published",
}


def get_json(cluster: Cluster, runner: Recorder, kubectl: str, *what: str) -> dict:
    proc = runner.run(Step([kubectl, *kube_args(cluster), "get", *what, "-o", "json"], timeout=60))
    return json.loads(proc.stdout) if runner.live else {}


def find(poll: Poll, kind: str, namespace: str, name: str) -> dict:
    """One object of a poll ({} when absent)."""
    for item in poll.items:
        meta = item.get("metadata") or {}
        if item.get("kind") == kind and meta.get("namespace") == namespace and meta.get("name") == name:
            return item
    return {}


def before_sync(committed_urls: frozenset):
    """``FluxWatch(pending=...)`` while ``flux bootstrap`` runs: the
    flux-system GitRepository still at a URL the tree commits in
    gotk-sync.yaml. Bootstrap applies flux-system/ as committed before its
    own sync manifests, so that source fails (it points at the tree's
    placeholder host) until bootstrap replaces it; that is not the tree's
    failure."""

    def pending(item: dict) -> bool:
        meta = item.get("metadata") or {}
        return (item.get("kind") == "GitRepository" and meta.get("name") == "flux-system"
                and meta.get("namespace") == "flux-system"
                and str((item.get("spec") or {}).get("url", "")) in committed_urls)

    return pending
