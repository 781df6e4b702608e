"""Which Flux failures waiting cannot heal, read from the objects' status.

A wait for readiness only makes sense while Flux may still get there. The
controllers say when it will not, in their conditions, their status and the
events they record; these functions read that (pure: JSON in, verdicts out)
so a wait can stop at the first such failure instead of running out its
bound. The rules, each from what the controllers of the pinned Flux set
(kustomize-controller's ``kustomization_controller.go``, helm-controller's
``atomic_release.go``, source-controller's errors, fluxcd/pkg's ``ssa``
errors and ``meta.History``):

- **Stalled**: ``Stalled=True`` on any Flux object. The controller stops
  retrying until the object changes (a Helm action out of retries is
  ``Stalled`` with reason ``RetriesExceeded``; a source whose URL cannot
  be valid is ``Stalled`` with ``URLInvalid``).
- **rejected by the API server**: a Kustomization's server-side dry-run failed
  with ``Invalid``/``BadRequest`` (``<Kind>/<ns>/<name> dry-run failed
  (Invalid): ...``). The same manifests are rejected on every attempt; the
  rejected object is named, not only the Kustomization.
- **path not found**: ``kustomization path not found`` (reason
  ``ArtifactFailed``): the artifact of this revision has no such directory.
- **build failed**: ``BuildFailed`` (kustomize build, variable substitution,
  decoding) of the same revision, unless it names something not found, which
  another object may still create.
- **health check failed**: ``HealthCheckFailed``: the controller already
  waited its own ``spec.timeout``, or failed early because what it waits for
  failed.
- **failing again**: any other failure of a Kustomization, HelmRelease or
  source (``Ready=False`` or ``FetchFailed=True``) seen on two attempts in a
  row with the same reason and message. An attempt is counted from the
  controller's own record: a Warning event's ``count`` (events of the same
  object, reason and message are aggregated), a new ``lastTransitionTime``
  of the failed condition (each attempt passes through ``Unknown``), or a
  Kustomization's ``status.history`` entry of the failed status. A source
  that cannot fetch is retried with backoff in seconds, a Kustomization
  after its ``retryInterval``. A failure that names something *not found*
  (a namespace, a source, a ConfigMap another Kustomization may still
  create) must also have lasted ``PATIENCE`` seconds.

Waiting states are never failures: ``DependencyNotReady``, progressing, a
source artifact not there yet, a HelmRelease whose chart source is not
ready (its source is judged on its own).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

# Flux's API groups, and the Flux Operator's (its FluxInstance reports with
# the same conditions: Stalled=True when a retry cannot help).
FLUX_GROUPS = ("toolkit.fluxcd.io", "fluxcd.controlplane.io")
SOURCE_KINDS = ("GitRepository", "OCIRepository", "HelmRepository", "HelmChart", "Bucket")
# A dry-run rejection that no retry changes: the manifests themselves are refused.
REJECTED = ("Invalid", "BadRequest", "RequestEntityTooLarge", "UnsupportedMediaType")
_DRY_RUN = re.compile(r"(?P<kind>[\w.]+)/(?:(?P<namespace>[\w.-]+)/)?(?P<name>[\w.:-]+) dry-run failed"
                      r"(?: \((?P<reason>\w+)\))?: ")
_NOT_FOUND_DRY_RUN = re.compile(r"(?P<kind>[\w.]+)/(?:(?P<namespace>[\w.-]+)/)?(?P<name>[\w.:-]+) "
                                r"(?:not found|namespace not specified): ")
# Waiting, not failing (kustomize-controller and helm-controller reasons).
WAITING = {"DependencyNotReady", "Progressing", "ProgressingWithRetry", "SourceNotReady", "HealthCheckCanceled",
           "ReconciliationSucceeded", "Succeeded"}
# The field of a source a fetch failure is about (source-controller's reasons).
SOURCE_FIELDS = {"OCIArtifactPullFailed": ("spec", "ref"), "ReadOperationFailed": ("spec", "ref"),
                 "VerificationError": ("spec", "verify"), "AuthenticationFailed": ("spec", "secretRef")}
ATTEMPTS = 2  # "failing again": the same failure on this many attempts in a row
PATIENCE = 60.0  # seconds a "not found" failure must last as well (a Kustomization's retryInterval here)


@dataclass(frozen=True)
class ObjectRef:
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace + '/' if self.namespace else ''}{self.name}"


@dataclass(frozen=True)
class Failure:
    """A Flux object that will not become Ready by waiting."""

    obj: ObjectRef
    rule: str  # "stalled", "rejected", "path not found", "build failed", "health check failed", "failing again"
    reason: str  # the condition's reason, as Flux sets it
    message: str  # the object's own message
    revision: str = ""  # the revision it failed on, when Flux records one
    attempts: int = 1
    # The object the API server rejected (dry-run), when it is not ``obj``.
    rejected: ObjectRef | None = None
    # The field of ``obj`` the failure is about (for its tree line): ("spec", "path").
    field: tuple = ()
    # When Flux first reported it (RFC 3339, the API server's clock), if known.
    since: str = ""

    def age(self, now=None) -> float | None:
        """Seconds since Flux reported the failure (None when unknown)."""
        import datetime

        if not self.since:
            return None
        try:
            when = datetime.datetime.fromisoformat(self.since.replace("Z", "+00:00"))
        except ValueError:
            return None
        now = now or datetime.datetime.now(datetime.timezone.utc)
        return max(0.0, (now - when).total_seconds())

    @property
    def why(self) -> str:
        """Why waiting cannot change it, in a few words."""
        return {
            "stalled": "Flux marked it Stalled: it retries no more until the object changes",
            "rejected": "the API server rejects the manifest, on every attempt",
            "path not found": "the revision has no such directory",
            "build failed": "the build of this revision fails, on every attempt",
            "health check failed": "its health check already waited its timeout or failed early",
            "failing again": f"the same failure on {self.attempts} attempts in a row",
        }.get(self.rule, self.rule)


@dataclass
class Seen:
    """What the previous polls saw of one object's failure."""

    fingerprint: tuple
    since: float  # when a poll first saw it (the tracker's clock)
    transitions: set = field(default_factory=set)


class Tracker:
    """Memory across polls, per object and failure: since when it is seen,
    and the failed condition's transition times (an attempt that passed
    through ``Unknown`` between two polls still counts)."""

    def __init__(self, clock=None) -> None:
        import time

        self.clock = clock or time.monotonic
        self.seen: dict[ObjectRef, Seen] = {}

    def see(self, ref: ObjectRef, fingerprint: tuple, when: str) -> Seen:
        seen = self.seen.get(ref)
        if seen is None or seen.fingerprint != fingerprint:
            seen = self.seen[ref] = Seen(fingerprint, self.clock())
        if when:
            seen.transitions.add(when)
        return seen

    def age(self, seen: Seen) -> float:
        return self.clock() - seen.since


def is_flux(item: dict) -> bool:
    return any(g in str(item.get("apiVersion", "")) for g in FLUX_GROUPS)


def ref_of(item: dict) -> ObjectRef:
    meta = item.get("metadata") or {}
    return ObjectRef(str(item.get("kind", "?")), str(meta.get("namespace", "")), str(meta.get("name", "?")))


def condition(item: dict, kind: str) -> dict:
    for cond in (item.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return cond
    return {}


def normalise(message: str) -> str:
    """A message with what changes between attempts of the same failure
    taken out: temporary paths, durations, counts."""
    message = re.sub(r"/tmp/[^\s/:]+", "/tmp/*", message)
    return re.sub(r"\d+(\.\d+)?", "#", message)


def warning_counts(events: list[dict]) -> dict[ObjectRef, list[tuple[str, str, int, str]]]:
    """Per involved object: (reason, normalised message, count, first time)
    of its Warning events."""
    out: dict[ObjectRef, list[tuple[str, str, int, str]]] = {}
    for event in events:
        if event.get("type") != "Warning":
            continue
        involved = event.get("involvedObject") or {}
        ref = ObjectRef(str(involved.get("kind", "")), str(involved.get("namespace", "")),
                        str(involved.get("name", "")))
        count = int(event.get("count") or (event.get("series") or {}).get("count") or 1)
        first = str(event.get("firstTimestamp") or event.get("eventTime") or "")
        out.setdefault(ref, []).append((str(event.get("reason", "")), normalise(str(event.get("message", ""))),
                                        count, first))
    return out


def fingerprint(failed: dict) -> tuple:
    return failed.get("type"), failed.get("reason"), normalise(str(failed.get("message", "")))


def attempts(item: dict, failed: dict, events: dict, seen: Seen | None = None) -> int:
    """How many attempts in a row ended in ``failed`` (a condition), by the
    controller's own records (see the module docstring)."""
    mark = fingerprint(failed)
    counted = 1
    for reason, message, count, _first in events.get(ref_of(item), []):
        if reason == failed.get("reason") or message == mark[2]:
            counted = max(counted, count)
    if seen is not None:
        counted = max(counted, len(seen.transitions))
    history = (item.get("status") or {}).get("history") or []
    if history and failed.get("type") == "Ready" and history[0].get("lastReconciledStatus") == failed.get("reason"):
        counted = max(counted, int(history[0].get("totalReconciliations") or 1))
    return counted


def first_seen(item: dict, failed: dict, events: dict) -> str:
    """When the failure was first reported: the first of its matching
    Warning events, else the failed condition's transition."""
    times = [when for reason, message, _count, when in events.get(ref_of(item), [])
             if when and (reason == failed.get("reason") or message == fingerprint(failed)[2])]
    return min(times) if times else str(failed.get("lastTransitionTime") or "")


def failed_condition(item: dict) -> dict:
    """The condition that says the object failed: ``FetchFailed=True`` for a
    source (its Ready follows it), else ``Ready=False``; {} when neither."""
    fetch = condition(item, "FetchFailed")
    if fetch.get("status") == "True":
        return fetch
    ready = condition(item, "Ready")
    return ready if ready.get("status") == "False" else {}


def stale(item: dict) -> bool:
    """Whether the object's failure speaks of an older spec: its generation
    moved past the one the failing condition was observed for (bootstrap
    replaced the committed flux-system source with its own URL, a pin
    moved). A failure reported then is the old spec's, not this one's. The
    condition's own ``observedGeneration`` counts: Flux leaves the status's
    at -1 until a reconciliation succeeds."""
    generation = (item.get("metadata") or {}).get("generation")
    observed = failed_condition(item).get("observedGeneration")
    if observed is None:
        observed = condition(item, "Ready").get("observedGeneration")
    try:
        return generation is not None and observed is not None and 0 <= int(observed) < int(generation)
    except (TypeError, ValueError):
        return False


def judge(item: dict, events: dict | None = None, tracker: Tracker | None = None) -> Failure | None:
    """The failure of one Flux object that waiting cannot heal, or None
    (Ready, or still on its way, or failing in a way a retry may still
    mend). ``events`` is ``warning_counts`` of the cluster's events;
    ``tracker`` remembers earlier polls."""
    ref = ref_of(item)
    status = item.get("status") or {}
    if condition(item, "Ready").get("status") == "True":
        return None
    if stale(item):
        return None  # the controller has not yet looked at the object as it is now
    revision = str(status.get("lastAttemptedRevision") or (status.get("artifact") or {}).get("revision") or "")
    stalled = condition(item, "Stalled")
    failed = failed_condition(item)
    message = str(failed.get("message") or "")
    if stalled.get("status") == "True":
        detail = str(stalled.get("message") or "")
        if message and message != detail:
            detail = f"{detail}; last error: {message}" if detail else message
        return Failure(ref, "stalled", str(stalled.get("reason") or ""), detail, revision,
                       since=str(stalled.get("lastTransitionTime") or ""))
    reason = str(failed.get("reason") or "")
    if not failed or reason in WAITING:
        return None
    if ref.kind == "Kustomization":
        found = _kustomization_failure(ref, reason, message, revision)
        if found is not None:
            return dataclasses.replace(found, since=str(failed.get("lastTransitionTime") or ""))
        if reason == "ArtifactFailed":
            return None  # its source or the source's artifact is not there yet: the source is judged
    seen = tracker.see(ref, fingerprint(failed), str(failed.get("lastTransitionTime", ""))) if tracker else None
    counted = attempts(item, failed, events or {}, seen)
    if counted < ATTEMPTS:
        return None
    if "not found" in message.lower() and (seen is None or tracker.age(seen) < PATIENCE):
        return None
    return Failure(ref, "failing again", reason, message, revision, counted, field=SOURCE_FIELDS.get(reason, ()),
                   since=first_seen(item, failed, events or {}))


def _kustomization_failure(ref: ObjectRef, reason: str, message: str, revision: str) -> Failure | None:
    if reason == "ArtifactFailed" and message.startswith("kustomization path not found"):
        return Failure(ref, "path not found", reason, message, revision, field=("spec", "path"))
    if reason == "BuildFailed" and "not found" not in message:
        return Failure(ref, "build failed", reason, message, revision)
    if reason == "HealthCheckFailed":
        return Failure(ref, "health check failed", reason, message, revision)
    if reason == "ReconciliationFailed":
        rejected = dry_run_rejection(message)
        if rejected is not None:
            return Failure(ref, "rejected", reason, message, revision, rejected=rejected)
    return None


def dry_run_rejection(message: str) -> ObjectRef | None:
    """The object a dry-run rejection names, when the API server refused the
    manifest itself (``REJECTED``); None for other dry-run errors (a
    namespace or kind not there yet, a permission not granted yet)."""
    for match in _DRY_RUN.finditer(message):
        if match["reason"] in REJECTED:
            return ObjectRef(match["kind"], match["namespace"] or "", match["name"])
    return None


def dry_run_object(message: str) -> ObjectRef | None:
    """The object any dry-run error names (rejected or not found)."""
    match = _DRY_RUN.search(message) or _NOT_FOUND_DRY_RUN.search(message)
    return ObjectRef(match["kind"], match["namespace"] or "", match["name"]) if match else None


def judge_all(listing: dict, events: list[dict] | None = None, tracker: Tracker | None = None) -> list[Failure]:
    """Every Flux object of ``listing`` (``kubectl get ... -o json``) that
    waiting cannot heal, in the listing's order."""
    counts = warning_counts(events or [])
    out = []
    for item in listing.get("items", []):
        if not is_flux(item):
            continue
        found = judge(item, counts, tracker)
        if found is not None:
            out.append(found)
    return out


def needs_events(listing: dict) -> bool:
    """Whether any object fails in a way only the events can show to be a
    repeat (so the caller reads them only then)."""
    for item in listing.get("items", []):
        if not is_flux(item):
            continue
        failed = failed_condition(item)
        if failed and failed.get("reason") not in WAITING:
            return True
    return False
