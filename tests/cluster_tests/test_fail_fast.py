"""Fail fast, without a cluster: which Flux statuses end a wait (and which
must not), where the failed object is written and shown, the message, and
that a failure of the setup or of a cluster is reported once.

The statuses are the ones the pinned Flux controllers write (their
reasons and message formats: kustomize-controller, helm-controller,
source-controller, fluxcd/pkg's ssa and meta.History)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from cluster import failures, status, tier
from cluster.failures import ObjectRef
from cluster.locate import Locator
from cluster.providers import Cluster
from cluster.runner import LiveRunner, Recorder, StepFailed
from cluster.guard import ContextGuard
from cluster.plan import Step
from harness.model import PROJECT_ROOT

KS = "kustomize.toolkit.fluxcd.io/v1"
HR = "helm.toolkit.fluxcd.io/v2"
SRC = "source.toolkit.fluxcd.io/v1"


def obj(api, kind, namespace, name, *conditions, **status_fields):
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": namespace, "generation": 1},
            "status": {"observedGeneration": 1, "conditions": list(conditions), **status_fields}}


def cond(kind, state, reason, message="", when="2026-12-04T10:00:00Z"):
    return {"type": kind, "status": state, "reason": reason, "message": message, "lastTransitionTime": when}


def event(kind, namespace, name, reason, message, count):
    return {"type": "Warning", "reason": reason, "message": message, "count": count,
            "involvedObject": {"kind": kind, "namespace": namespace, "name": name}}


PATH_NOT_FOUND = obj(KS, "Kustomization", "flux-system", "platform-configs",
                     cond("Ready", "False", "ArtifactFailed",
                          "kustomization path not found: stat /tmp/kustomization-3412/platform/configz: "
                          "no such file or directory"),
                     lastAttemptedRevision="1.0.0@sha256:ab12")
REJECTED = obj(KS, "Kustomization", "flux-system", "platform-baseline",
               cond("Ready", "False", "ReconciliationFailed",
                    "Namespace/podinfo dry-run failed (Invalid): Namespace \"podinfo\" is invalid: "
                    "metadata.labels: Invalid value: \"not ok\": a valid label must be ..."),
               lastAttemptedRevision="1.0.0@sha256:ab12")
STALLED_HELM = obj(HR, "HelmRelease", "podinfo", "podinfo",
                   cond("Stalled", "True", "RetriesExceeded", "Failed to install after 3 attempt(s)"),
                   cond("Ready", "False", "InstallFailed", "Helm install failed for release podinfo/podinfo with "
                                                           "chart podinfo@6.9.2: pods \"x\" is forbidden"))
SOURCE_FAILING = obj(SRC, "OCIRepository", "podinfo", "podinfo",
                     cond("FetchFailed", "True", "OCIArtifactPullFailed",
                          "failed to determine artifact digest: GET http://127.0.0.1:5001/v2/stefanprodan/charts/"
                          "podinfo/manifests/6.9.99: MANIFEST_UNKNOWN"),
                     cond("Ready", "False", "OCIArtifactPullFailed",
                          "failed to determine artifact digest: GET http://127.0.0.1:5001/v2/stefanprodan/charts/"
                          "podinfo/manifests/6.9.99: MANIFEST_UNKNOWN"))


# -- which statuses end a wait -------------------------------------------------


def test_definite_failures_end_the_wait_at_first_sight() -> None:
    found = failures.judge(PATH_NOT_FOUND)
    assert found.rule == "path not found" and found.field == ("spec", "path")
    assert found.revision == "1.0.0@sha256:ab12"
    found = failures.judge(REJECTED)
    assert found.rule == "rejected" and found.rejected == ObjectRef("Namespace", "", "podinfo")
    found = failures.judge(STALLED_HELM)
    assert found.rule == "stalled" and found.reason == "RetriesExceeded"
    assert "Failed to install after 3 attempt(s); last error: Helm install failed" in found.message


def test_waiting_states_never_end_the_wait() -> None:
    waiting = [
        obj(KS, "Kustomization", "flux-system", "apps", cond("Ready", "False", "DependencyNotReady",
                                                             "dependency 'flux-system/platform-configs' is not ready")),
        obj(KS, "Kustomization", "flux-system", "apps", cond("Ready", "Unknown", "Progressing", "Reconciliation in progress")),
        obj(KS, "Kustomization", "flux-system", "apps", cond("Ready", "False", "ArtifactFailed",
                                                             "Source artifact not found, retrying in 30s")),
        obj(HR, "HelmRelease", "podinfo", "podinfo", cond("Ready", "False", "SourceNotReady",
                                                          "OCIRepository 'podinfo/podinfo' is not ready")),
        obj(KS, "Kustomization", "flux-system", "apps"),  # no condition yet
        obj(KS, "Kustomization", "flux-system", "apps", cond("Ready", "True", "ReconciliationSucceeded", "Applied")),
    ]
    for item in waiting:
        assert failures.judge(item, {}, failures.Tracker()) is None, item


def test_a_dry_run_error_that_may_heal_is_not_a_rejection() -> None:
    missing_namespace = obj(KS, "Kustomization", "flux-system", "apps", cond(
        "Ready", "False", "ReconciliationFailed",
        "HelmRelease/podinfo/podinfo not found: namespaces \"podinfo\" not found"))
    assert failures.judge(missing_namespace) is None
    assert failures.dry_run_object(missing_namespace["status"]["conditions"][0]["message"]) == \
        ObjectRef("HelmRelease", "podinfo", "podinfo")


def test_a_failure_seen_on_two_attempts_ends_the_wait() -> None:
    tracker = failures.Tracker()
    assert failures.judge(SOURCE_FAILING, {}, tracker) is None, "one attempt is not yet a repeat"
    counts = failures.warning_counts([event("OCIRepository", "podinfo", "podinfo", "OCIArtifactPullFailed",
                                            "failed to determine artifact digest: ... MANIFEST_UNKNOWN", 2)])
    found = failures.judge(SOURCE_FAILING, counts, tracker)
    assert found.rule == "failing again" and found.attempts == 2 and found.field == ("spec", "ref")
    assert "MANIFEST_UNKNOWN" in found.message


def test_attempts_counted_from_transitions_and_history() -> None:
    tracker = failures.Tracker()
    forbidden = "Deployment/podinfo/podinfo dry-run failed (Forbidden): deployments is forbidden: user cannot"
    first = obj(KS, "Kustomization", "flux-system", "apps",
                cond("Ready", "False", "ReconciliationFailed", forbidden, when="2026-12-04T10:00:00Z"))
    assert failures.judge(first, {}, tracker) is None, "Forbidden may heal (RBAC applied later): one attempt is not enough"
    again = obj(KS, "Kustomization", "flux-system", "apps",
                cond("Ready", "False", "ReconciliationFailed", forbidden, when="2026-12-04T10:01:00Z"))
    assert failures.judge(again, {}, tracker).attempts == 2
    recorded = obj(KS, "Kustomization", "flux-system", "apps",
                   cond("Ready", "False", "ReconciliationFailed", forbidden),
                   history=[{"digest": "sha256:1", "lastReconciledStatus": "ReconciliationFailed",
                             "totalReconciliations": 2}])
    assert failures.judge(recorded, {}, failures.Tracker()).attempts == 2


def test_a_not_found_failure_must_also_last() -> None:
    now = [0.0]
    tracker = failures.Tracker(clock=lambda: now[0])
    missing = obj(HR, "HelmRelease", "podinfo", "podinfo",
                  cond("Ready", "False", "ArtifactFailed", "could not get Source object: ocirepositories \"podinfo\" "
                                                         "not found"))
    counts = failures.warning_counts([event("HelmRelease", "podinfo", "podinfo", "ArtifactFailed", "x", 5)])
    assert failures.judge(missing, counts, tracker) is None
    now[0] = failures.PATIENCE + 1
    assert failures.judge(missing, counts, tracker).rule == "failing again"


def test_judge_all_reads_only_flux_objects_and_needs_events_only_when_failing() -> None:
    listing = {"items": [PATH_NOT_FOUND, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}]}
    assert [f.obj.name for f in failures.judge_all(listing)] == ["platform-configs"]
    assert failures.needs_events(listing)
    assert not failures.needs_events({"items": [obj(KS, "Kustomization", "flux-system", "apps",
                                                    cond("Ready", "False", "DependencyNotReady", "waiting"))]})


def test_the_flux_operators_stalled_instance_ends_the_wait() -> None:
    # What the operator wrote when its image lacked /etc/os-release: a
    # preflight failure it will not retry (Stalled, BuildFailed).
    message = "failed to read /etc/os-release: open /etc/os-release: no such file or directory"
    instance = obj("fluxcd.controlplane.io/v1", "FluxInstance", "flux-system", "flux",
                   cond("Stalled", "True", "BuildFailed", message), cond("Ready", "False", "BuildFailed", message))
    found = failures.judge_all({"items": [instance]})
    assert [(f.obj.kind, f.rule, f.message) for f in found] == [("FluxInstance", "stalled", message)]


# -- where, and what the message says ---------------------------------------------


def test_the_message_names_tree_and_page_lines() -> None:
    locator = Locator(PROJECT_ROOT)
    text = status.explain("production", [failures.judge(SOURCE_FAILING, failures.warning_counts(
        [event("OCIRepository", "podinfo", "podinfo", "OCIArtifactPullFailed", "x", 3)]))], locator, 12.0)
    # production's pin is written in its overlay, and a page shows that line.
    assert "(apps/production/kustomization.yaml:" in text and "docs/" in text, text
    assert "MANIFEST_UNKNOWN" in text and "OCIRepository podinfo/podinfo" in text
    assert "the same failure on 3 attempts in a row" in text
    text = status.explain("staging", [failures.judge(PATH_NOT_FOUND)], locator, 3.0)
    assert "clusters/staging/platform.yaml:" in text and "fix spec.path" in text, text
    text = status.explain("staging", [failures.judge(REJECTED)], locator, 3.0)
    assert "platform/baseline/namespaces.yaml:" in text and "is rejected by the API server" in text, text
    assert "applied by Kustomization flux-system/platform-baseline (" in text


def test_the_sandbox_is_located_in_the_directory_it_is_cloned_from() -> None:
    where = Locator(PROJECT_ROOT).where("sandbox", ObjectRef("Kustomization", "flux-system", "apps"))
    assert "clusters/development/apps.yaml:" in str(where)


# -- the wait ----------------------------------------------------------------------


class FakeRunner(Recorder):
    """Answers the watch's `kubectl get` with the listings given, in turn."""

    live = True

    def __init__(self, listings, events=()):
        super().__init__()
        self.listings, self.events = list(listings), list(events)

    def run(self, step, check=True, while_waiting=None):
        import json

        self.steps.append(step)
        if "events" in step.argv:
            return subprocess.CompletedProcess(step.argv, 0, json.dumps({"items": self.events}), "")
        listing = self.listings.pop(0) if len(self.listings) > 1 else self.listings[0]
        return subprocess.CompletedProcess(step.argv, 0, json.dumps(listing), "")


CLUSTER = Cluster("staging", "gwp-staging", "kwok-gwp-staging", "/nowhere/kubeconfig")
READY = obj(KS, "Kustomization", "flux-system", "flux-system", cond("Ready", "True", "ReconciliationSucceeded"))


def test_the_wait_ends_at_the_first_failure_and_a_later_wait_does_not_wait() -> None:
    failed: dict = {}
    runner = FakeRunner([{"items": [READY, obj(KS, "Kustomization", "flux-system", "platform-configs",
                                                cond("Ready", "Unknown", "Progressing"))]},
                         {"items": [READY, PATH_NOT_FOUND]}])
    watch = status.FluxWatch(CLUSTER, runner, "kubectl", failed=failed, interval=0)
    started = time.monotonic()
    with pytest.raises(status.FluxFailed, match="kustomization path not found") as raised:
        watch.until(lambda poll: poll.all_ready(), 600, "Ready")
    assert time.monotonic() - started < 5
    assert failed["staging"] is raised.value
    with pytest.raises(status.AlreadyFailed, match="staging failed already: staging: 1 Flux object failed"):
        status.FluxWatch(CLUSTER, runner, "kubectl", failed=failed).until(lambda poll: True, 600, "Ready")


def test_the_wait_knows_the_objects_the_tree_gives_the_cluster() -> None:
    expected = frozenset({("Kustomization", "flux-system", "flux-system"), ("Kustomization", "flux-system", "apps")})
    poll = status.Poll([READY], status.states({"items": [READY]}), expected)
    assert not poll.all_ready() and poll.waiting() == ["Kustomization flux-system/apps: not created yet"]
    stale = obj(KS, "Kustomization", "flux-system", "apps", cond("Ready", "True", "ReconciliationSucceeded"))
    stale["metadata"]["generation"] = 2
    assert not status.states({"items": [stale]})[0].ready, "Ready for an older generation is not Ready"
    assert ("HelmRelease", "podinfo", "podinfo") in status.expected_objects(PROJECT_ROOT, "staging")


def test_a_long_step_is_stopped_by_its_watcher(tmp_path) -> None:
    runner = LiveRunner(ContextGuard(), "kubectl", echo=lambda line: None, watch_every=0.05)
    calls = []

    def watcher():
        calls.append(1)
        raise status.FluxFailed("staging", [], "staging: stop")

    started = time.monotonic()
    with pytest.raises(status.FluxFailed):
        runner.run(Step([sys.executable, "-c", "import time; time.sleep(60)"], timeout=120), while_waiting=watcher)
    assert time.monotonic() - started < 15 and calls
    runner.watch_every = 10.0  # longer than the next step takes
    proc = runner.run(Step([sys.executable, "-c", "print('done')"], timeout=30), while_waiting=watcher)
    assert proc.stdout == "done\n" and len(calls) == 1, "a quick step finishes before its watcher is asked"
    with pytest.raises(StepFailed, match="exit 3"):
        runner.run(Step([sys.executable, "-c", "import sys; sys.exit(3)"], timeout=30), while_waiting=lambda: None)


# -- once ---------------------------------------------------------------------------


def test_a_failure_is_reported_by_the_first_test_and_not_run_for_the_others() -> None:
    error = status.FluxFailed("staging", [], "staging: 1 Flux object failed\n  details")
    assert tier.not_run_reason(error) is None
    tier.mark_reported(error, "test_a[staging]")
    later = status.AlreadyFailed("staging", error)
    assert tier.not_run_reason(later) == \
        "not run: staging: 1 Flux object failed (reported by test_a[staging])"
    assert tier.reported_once(later) and not tier.reported_once(AssertionError("a proof's own assertion"))


def test_proof_fails_once_then_skips(monkeypatch) -> None:
    from cluster.environment import SetupFailed

    class Env:
        live, clusters = False, {}

    error = SetupFailed("the tier's git server, registry, charts and first platform release", "endpoints",
                        ValueError("apps/production/kustomization.yaml:19: the tree pins ..."))
    with pytest.raises(pytest.fail.Exception, match="could not be made\n  apps/production"):
        with tier.proof(Env(), "x", "test_first"):
            raise error
    with pytest.raises(pytest.skip.Exception, match=r"not run: .* \(reported by test_first\)"):
        with tier.proof(Env(), "x", "test_second"):
            raise error
    with pytest.raises(AssertionError, match="its own"):
        with tier.proof(Env(), "x", "test_third"):
            raise AssertionError("its own")


def test_the_session_makes_only_the_clusters_the_selected_tests_need() -> None:
    class Item:
        def __init__(self, args, params=None):
            self.args, self.callspec = args, type("C", (), {"params": params or {}})()

        def get_closest_marker(self, name):
            return type("M", (), {"args": self.args})()

    assert tier.needed_clusters([Item((), {"target": "development"})]) == ["development"]
    assert tier.needed_clusters([Item(("staging", "production")), Item(("sandbox",))]) == \
        ["staging", "production", "sandbox"]
    assert set(tier.needed_clusters([Item((tier.PAGE_CLUSTERS,))])) == {"development", "staging", "production",
                                                                        "sandbox"}


def test_a_failure_of_an_older_spec_does_not_end_the_wait() -> None:
    """Bootstrap replaces the committed flux-system source (the tree's
    placeholder URL) with its own: until the controller looks again, the
    status still carries the old URL's failures, however many."""
    counts = failures.warning_counts([event("OCIRepository", "podinfo", "podinfo", "OCIArtifactPullFailed",
                                            "failed to determine artifact digest: ... MANIFEST_UNKNOWN", 5)])
    changed = json.loads(json.dumps(SOURCE_FAILING))
    changed["metadata"]["generation"] = 3
    for item in changed["status"]["conditions"]:
        item["observedGeneration"] = 2
    assert failures.judge(changed, counts, failures.Tracker()) is None
    for item in changed["status"]["conditions"]:
        item["observedGeneration"] = 3
    changed["status"]["observedGeneration"] = -1  # Flux's until a reconciliation succeeds
    assert failures.judge(changed, counts, failures.Tracker()) is not None


def test_bootstraps_committed_source_is_not_judged_while_bootstrap_runs(tmp_path) -> None:
    from cluster import status, tree

    (tmp_path / "clusters/x/flux-system").mkdir(parents=True)
    (tmp_path / "clusters/x/flux-system/gotk-sync.yaml").write_text(
        "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n  name: flux-system\n"
        "  namespace: flux-system\nspec:\n  url: https://github.com/example-org/x\n", encoding="utf-8")
    pending = status.before_sync(tree.committed_sync_urls(tmp_path))
    source = {"kind": "GitRepository", "metadata": {"name": "flux-system", "namespace": "flux-system"},
              "spec": {"url": "https://github.com/example-org/x"}}
    assert pending(source)
    assert not pending({**source, "spec": {"url": "http://127.0.0.1:8080/x.git"}})


def test_a_proof_run_ahead_waits_for_the_clusters_and_keeps_its_own_error() -> None:
    import concurrent.futures
    import threading
    from types import SimpleNamespace

    from cluster.environment import TierEnvironment

    made = concurrent.futures.Future()
    env = SimpleNamespace(live=True, closed=False, _lock=threading.Lock(), _proofs={}, _threads=[],
                          _once={"cluster staging": made})
    order = []

    def proof():
        order.append("proof")
        raise AssertionError("the fork's sources read another URL")

    TierEnvironment.ahead_proof(env, "fork", proof, after=("staging", "production"))
    time.sleep(0.05)
    assert order == [], "the proof started before the cluster it waits for was made"
    made.set_result("staging")
    with pytest.raises(AssertionError, match="another URL"):  # as raised, not wrapped as a setup failure
        TierEnvironment.proof_result(env, "fork", lambda: order.append("again"))
    assert order == ["proof"]
    assert TierEnvironment.proof_result(env, "other", lambda: "ran now") == "ran now"
    # A proof that names another one waits until that one is done.
    assert "fork" in env._proofs and "operator" not in env._proofs
    TierEnvironment.ahead_proof(env, "operator", lambda: order.append("operator") or "compared", after=("fork",))
    assert TierEnvironment.proof_result(env, "operator", lambda: None) == "compared"
    assert order == ["proof", "operator"]
