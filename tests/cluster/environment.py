"""Everything a cluster test stands on, made on demand and always taken down.

``TierEnvironment.cluster(target)`` returns a cluster of the tree that Flux
has bootstrapped from the harness's git server, creating it (and, the first
time, the git server, the registry and the first platform release) if needed.
``close()`` deletes all of it unless ``keep`` is set; it runs from the pytest
fixture's teardown, at interpreter exit and on SIGTERM or SIGHUP (a closed
terminal), so success, failure, Ctrl-C and a run ended from outside all clean
up.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import os
import threading
import shutil
import signal
import tempfile
import time
from pathlib import Path

from . import charts, gitserver, names, providers, registry, status, tree
from .guard import ContextGuard
from .locate import Locator
from .plan import GIT_PORT, INHERITED_PATH, WORK, Step
from .preflight import Preflight
from .providers import Cluster, Endpoints
from .runner import TEARDOWN_THREADS, LiveRunner, Recorder


class TierEnvironment:
    def __init__(self, root: Path, provider_name: str, found: Preflight, live: bool, keep: bool = False,
                 echo=None):
        self.root = root
        self.started = time.monotonic()
        self.found = found
        self.keep = keep
        self.guard = ContextGuard()
        self.work = tempfile.mkdtemp(prefix=f"{names.PREFIX}work-") if live else WORK
        self.runner: Recorder = (
            LiveRunner(self.guard, found.tool("kubectl"), echo) if live else Recorder(self.guard)
        )
        self.provider = providers.get(provider_name, found.tools, self.work, str(root))
        self.clusters: dict[str, Cluster] = {}
        self.made: list[str] = []  # every cluster this run created, for the report
        self.sources: dict[str, tuple[str, str]] = {}  # target -> (path, branch) it was bootstrapped from
        self.endpoints: Endpoints | None = None
        self.registry: registry.Registry | None = None
        self.git: gitserver.GitServer | None = None
        self.closed = False
        # Where the tree defines what the clusters run, and shows it (failure messages).
        self.locator = Locator(root)
        # Clusters on which Flux failed for good: target -> the status.FluxFailed
        # raised first, so no later wait on that cluster waits (status.FluxWatch).
        self.failed: dict[str, BaseException] = {}
        self._lock = threading.Lock()
        self._once: dict[str, concurrent.futures.Future] = {}
        self._threads: list[threading.Thread] = []
        self._stops: list = []  # on_close
        self._proofs: dict[str, concurrent.futures.Future] = {}  # ahead_proof
        self._stages: dict[str, concurrent.futures.Future] = {}  # stage, reach
        if live:
            atexit.register(self.close)
            self._previous = {sig: signal.signal(sig, _ended_as_interrupt) for sig in ENDING_SIGNALS}
            self._kube_cache = kube_cache_in(self.work)

    @property
    def live(self) -> bool:
        return self.runner.live

    def tool(self, name: str) -> str:
        return self.found.tool(name)

    # -- what the tests ask for --------------------------------------------

    # -- work done once, maybe ahead of time -------------------------------

    def once(self, key: str, make):
        """``make()``'s result, made once per run; waits for it when
        ``ahead`` started it in the background. Its error is raised to
        every caller as the same ``SetupFailed`` (or ``status.FluxFailed``,
        when Flux failed on the tree), so that the first test to meet it
        reports it and the others say they were not run for it."""
        with self._lock:
            future = self._once.get(key)
            if future is None:
                future = self._once[key] = concurrent.futures.Future()
                mine = True
            else:
                mine = False
        if mine:
            try:
                future.set_result(make())
            except (KeyboardInterrupt, SystemExit) as error:
                future.set_exception(error)
            except BaseException as error:  # noqa: BLE001 - kept for every caller
                future.set_exception(error if isinstance(error, (SetupFailed, status.FluxFailed))
                                     else SetupFailed(SETUP_WHAT.get(key.split(" ")[0], key), key, error))
        return future.result()

    def ahead(self, key: str, make) -> None:
        """Start ``once(key, make)`` in the background: the clusters are made
        side by side while the first test waits for its own."""
        if not self.live:
            return
        with self._lock:
            if key in self._once:
                return

        def run() -> None:
            try:
                self.once(key, make)
            except BaseException:  # noqa: BLE001 - kept in the future; the test that needs it raises it
                pass

        thread = threading.Thread(target=run, name=f"gwp-{key.replace(' ', '-')}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def stage(self, key: str) -> concurrent.futures.Future:
        """A point of the run that a proof run ahead may wait for (an item
        of ``ahead_proof``'s ``after``), passed once ``reach(key)`` is
        called: the page blocks are done with a cluster, for example."""
        with self._lock:
            return self._stages.setdefault(key, concurrent.futures.Future())

    def reach(self, *keys: str) -> None:
        """The run has passed these stages: what waits for them goes on."""
        for key in keys:
            future = self.stage(key)
            with self._lock:
                if not future.done():
                    future.set_result(key)

    def ahead_proof(self, key: str, run, after=(), yielding: bool = False) -> None:
        """Run the proof ``run()`` in the background, once what ``after``
        names is done: clusters (made or failed: a proof on a cluster of its
        own needs them at most for a comparison, and leaves them the machine
        while they are made), proofs started this way before it (their
        clusters go when they are done, so fewer run at once) and stages of
        the run (``stage``: a proof on the long-lived clusters waits until
        the page blocks are done with them); ``proof_result(key, run)``
        waits for it. Its error, an assertion or a Flux failure, is kept as
        it is, for the test to report.

        A ``yielding`` proof (one on clusters of its own, which nothing else
        waits for) runs at a lower CPU priority (``YIELDING_NICE``), and so
        does every process it starts: the cluster's control plane and
        controllers, the commands it runs. On a busy machine the tests in
        the foreground get the cores first; an idle core is still the
        proof's."""
        if not self.live:
            return
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._lock:
            if key in self._proofs:
                return
            self._proofs[key] = future

        def target() -> None:
            if yielding:
                yield_cpu()
            try:
                for made in [t if isinstance(t, concurrent.futures.Future)
                             else self._proofs.get(t) or self._once.get(f"cluster {t}") for t in after]:
                    if made is not None:
                        concurrent.futures.wait([made])
                if self.closed:
                    raise RuntimeError(f"{key}: not run, the cluster tier is being taken down")
                future.set_result(run())
            except BaseException as error:  # noqa: BLE001 - kept for the test, which raises it
                future.set_exception(error)

        thread = threading.Thread(target=target, name=f"gwp-proof-{key}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def proof_over(self, key: str) -> None:
        """Wait until the proof ``ahead_proof`` started under ``key`` is
        over, passed or failed (its test reports which); at once when none
        was started."""
        future = self._proofs.get(key)
        if future is not None:
            concurrent.futures.wait([future])

    def proof_result(self, key: str, run):
        """The result of the proof ``ahead_proof`` started (waiting for it),
        or of ``run()`` now, when nothing started it."""
        future = self._proofs.get(key)
        return run() if future is None else future.result()

    def prepare(self, targets) -> None:
        """Make and bootstrap ``targets`` in the background (the git server,
        registry and charts first, once, also in the background)."""
        if not self.live:
            return
        self.ahead("endpoints", self._make_endpoints)
        for target in targets:
            self.ahead(f"cluster {target}", lambda t=target: self._make(t, None, names.DEFAULT_BRANCH))

    def cluster(self, target: str, path: str | None = None, branch: str = names.DEFAULT_BRANCH) -> Cluster:
        """The cluster ``target``, bootstrapped from ``path`` (default
        ``clusters/<target>``) on ``branch`` of the served snapshot."""
        # Every cluster needs the endpoints: when they fail while the cluster
        # is being made ahead, that is the answer now, not after the make.
        started = [f for f in (self._once.get("endpoints"), self._once.get(f"cluster {target}")) if f is not None]
        if len(started) == 2:
            concurrent.futures.wait(started, return_when=concurrent.futures.FIRST_EXCEPTION)
        self.raise_if_failed("endpoints")
        made = self.once(f"cluster {target}", lambda: self._make(target, path, branch))
        made_from = self.sources[target]
        if path is not None and made_from != (path, branch):
            raise AssertionError(
                f"the {target} cluster was bootstrapped from {made_from[0]} on {made_from[1]}, "
                f"not {path} on {branch}: a test asked for two different {target} clusters"
            )
        return made

    def raise_if_failed(self, key: str) -> None:
        """Raise the error of ``once(key)`` if it is done and failed."""
        future = self._once.get(key)
        if future is not None and future.done() and future.exception() is not None:
            raise future.exception()

    def _make(self, target: str, path: str | None, branch: str) -> Cluster:
        if self.closed:
            raise RuntimeError(f"{target}: not made, the cluster tier is being taken down")
        self.raise_if_failed("endpoints")
        if target in self.clusters:
            made_from = self.sources[target]
            if path is not None and made_from != (path, branch):
                raise AssertionError(
                    f"the {target} cluster was bootstrapped from {made_from[0]} on {made_from[1]}, "
                    f"not {path} on {branch}: a test asked for two different {target} clusters"
                )
            return self.clusters[target]
        self.sources[target] = (path or f"clusters/{target}", branch)
        made = self.provider.create(target, self.runner)
        self.guard.register(made.context, made.kubeconfig)
        self.clusters[target] = made
        self.made.append(target)
        self.provider.wait_ready(made, self.runner)
        endpoints = self.ensure_endpoints()
        if self.closed:
            raise RuntimeError(f"{target}: not bootstrapped, the cluster tier is being taken down")
        self.provider.wire_endpoints(made, endpoints, self.runner, self.tool("kubectl"))
        # While bootstrap waits for the first reconciliation, a Flux object
        # that fails for good ends it (it would wait out its own timeout).
        watch = status.FluxWatch(made, self.runner, self.tool("kubectl"), locator=self.locator, failed=self.failed,
                                 pending=status.before_sync(tree.committed_sync_urls(self.root)))
        self.provider.install_flux(made, endpoints, self.runner, self.tool("flux"), path, branch,
                                   watch=watch.check if self.live else None)
        self.mark(f"{target} bootstrapped")
        return made

    def bare_cluster(self, target: str) -> Cluster:
        """A cluster of the run without Flux, for a proof that installs Flux
        its own way (over SSH from a private fork, by the Flux Operator).
        Deleted by ``delete_cluster`` when the proof has passed, else at close."""
        if self.closed:
            raise RuntimeError(f"{target}: not made, the cluster tier is being taken down")
        made = self.provider.create(target, self.runner)
        self.guard.register(made.context, made.kubeconfig)
        self.clusters[target] = made
        self.made.append(target)
        self.provider.wait_ready(made, self.runner)
        return made

    def delete_cluster(self, target: str) -> None:
        """Delete one cluster now (a proof's own, once it has passed): its
        memory is free for the rest of the run."""
        cluster = self.clusters.pop(target, None)
        if cluster is None:
            return
        try:
            self.provider.delete(cluster, self.runner)
        finally:
            self.guard.forget(cluster.context)

    def on_close(self, stop) -> None:
        """Call ``stop()`` first thing at close: a server a proof started
        (the SSH git server) stops after a failure or Ctrl-C too."""
        self._stops.append(stop)

    def ensure_endpoints(self) -> Endpoints:
        """Git server, registry and the pinned platform release; once (the
        clusters made side by side share them)."""
        if self.endpoints is not None:
            return self.endpoints
        return self.once("endpoints", self._make_endpoints)

    def _make_endpoints(self) -> Endpoints:
        bind, advertised = self.provider.host_address(self.runner)
        step = Step(["serve a snapshot of", str(self.root), f"on {bind}:{GIT_PORT} as",
                     f"http://{advertised}:{GIT_PORT}{names.GIT_REPO_PATH}"],
                    note="git smart-HTTP server (dulwich) of the working tree, uncommitted changes included",
                    in_process=True)
        port = GIT_PORT

        def start() -> None:
            nonlocal port
            self.git = gitserver.serve(self.root, host=bind)
            port = str(self.git.port)

        self.runner.call(step, start)
        self.registry = self.provider.start_registry(self.runner)
        mirrors = charts.publish(self.root, self.registry.push_host, self.tool("helm"), Path(self.work), self.runner) \
            if self.found.tools.get("helm") else {}
        self.endpoints = Endpoints(
            git_url=f"http://{advertised}:{port}{names.GIT_REPO_PATH}",
            oci_url=self.registry.cluster_url,
            chart_mirrors={host: self.registry.mirror_url for host in mirrors},
            release_key=self.release_key("cosign.pub"),
        )
        self.release(tree.production_pin(self.root))
        return self.endpoints

    def checkout(self, label: str) -> Path:
        """A fresh clone of the served snapshot (with every push so far)."""
        dest = Path(self.work) / f"clone-{label}"
        if self.live and dest.exists():
            shutil.rmtree(dest)
        self.runner.run(Step(["git", "clone", "--quiet", self.ensure_endpoints().git_url, str(dest)],
                             note=f"scratch clone of the served snapshot ({label})", timeout=120))
        return dest

    def release(self, version: str, change=None) -> None:
        """Publish the platform as OCI artifact ``version`` with the tree's own
        script, from a clone of the served snapshot; ``change(clone)``, when
        given, is committed first (what the release carries)."""
        assert self.registry is not None
        clone = self.checkout(f"release-{version}")
        if change is not None:
            self.runner.call(Step(["edit", "platform/", f"the change release {version} carries"],
                                  note=f"release {version}: a change to the platform", in_process=True),
                             lambda: change(clone))
            self.runner.run(Step(["git", "-c", "user.name=docs-test harness",
                                  "-c", "user.email=harness@gitops-whitepaper.invalid", "-C", str(clone), "commit",
                                  "--all", "--quiet", "--message", f"platform: release {version}"],
                                 note=f"commit the change of release {version}", timeout=60))
        self.runner.run(Step(
            ["bash", "snippets/platform-release.sh", version, "--registry", self.registry.push_url,
             "--insecure-registry", "--sign-key", self.release_key("cosign.key"), "--no-tlog"],
            note=f"publish platform release {version}, signed with the run's throwaway key "
                 "(snippets/platform-release.sh; the tag goes to the snapshot)",
            env={"PATH": self.tool_path(), "COSIGN": self.tool("cosign"), "COSIGN_PASSWORD": ""},
            cwd=str(clone),
            timeout=300,
        ))

    def release_key(self, name: str = "cosign.pub") -> str:
        """The run's throwaway cosign key pair (made once): the releases are
        signed with cosign.key, staging and production verify with cosign.pub."""
        folder = Path(self.work) / "release-key"
        if not (self.live and (folder / "cosign.key").exists()):
            if self.live:
                folder.mkdir(parents=True, exist_ok=True)
            self.runner.run(Step([self.tool("cosign"), "generate-key-pair"], cwd=str(folder),
                                 env={"COSIGN_PASSWORD": ""},
                                 note="a throwaway key pair for this run's platform releases", timeout=60))
        return str(folder / name)

    def tool_path(self) -> str:
        """PATH for scripts: the harness's tools first (so scripts get the
        pinned flux/kubectl), then the inherited PATH."""
        dirs = [str(Path(p).parent) for p in self.found.tools.values() if os.sep in p]
        return os.pathsep.join(dict.fromkeys([*dirs, INHERITED_PATH]))

    # -- teardown ----------------------------------------------------------

    def mark(self, event: str) -> None:
        """Record a moment of the run among the step timings (``MARK``)."""
        timings = getattr(self.runner, "timings", None)
        if timings is not None:
            now = time.monotonic()
            timings.append((now, now, MARK + event))

    def write_timings(self) -> None:
        """Every step's start and end (seconds from the environment's start)
        to the file $GWP_CLUSTER_TIMINGS names: where the benchmark reads
        where a run's time went."""
        path = os.environ.get(TIMINGS)
        timings = getattr(self.runner, "timings", None)
        if not path or not timings:
            return
        import json

        rows = [[round(start - self.started, 2), round(end - self.started, 2), what] for start, end, what in timings]
        Path(path).write_text(json.dumps(rows), encoding="utf-8")

    def close(self) -> list[str]:
        """Take everything down (unless ``keep``); returns what was kept."""
        if self.closed:
            return []
        self.closed = True
        # A second Ctrl-C must not cut the teardown short and leave processes
        # behind: interrupts wait until it is done.
        previous = {}
        if self.live and threading.current_thread() is threading.main_thread():
            previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, *ENDING_SIGNALS)}
            previous.update(getattr(self, "_previous", {}))
        try:
            return self._close()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _close(self) -> list[str]:
        started = time.monotonic()
        try:
            return self._take_down()
        finally:
            if hasattr(self.runner, "timings"):
                self.runner.timings.append((started, time.monotonic(), "teardown: every cluster, the registry, "
                                            "the work directory"))
            self.write_timings()

    def _take_down(self) -> list[str]:
        kept: list[str] = []
        errors: list[BaseException] = []
        if self.live:
            # Work still going on in the background stops at its next step.
            self.runner.close_to_others()
        # A proof that waits for a stage the run never reached goes on, to
        # find the tier closed.
        self.reach(*list(self._stages))
        for stop in reversed(self._stops):
            try:
                stop()
            except Exception as error:  # noqa: BLE001 - every step runs; the first error is raised at the end
                errors.append(error)
        if self.git is not None:
            self.git.stop()  # a server cannot outlive the test process
        if self.keep:
            kept = [f"{c.name} (KUBECONFIG={c.kubeconfig})" for c in self.clusters.values()]
            if self.registry is not None:
                kept.append(f"registry {self.registry.push_host}")
            return kept
        # The clusters are independent: take them down side by side.
        from concurrent.futures import ThreadPoolExecutor

        def delete(cluster: Cluster) -> None:
            try:
                self.provider.delete(cluster, self.runner)
            finally:
                self.guard.forget(cluster.context)
                self.clusters.pop(cluster.target, None)

        # Every step runs even when one before it failed; the first error is
        # raised at the end, after the temporary directory is gone.
        clusters = list(self.clusters.values())
        if clusters:
            with ThreadPoolExecutor(max_workers=len(clusters), thread_name_prefix=TEARDOWN_THREADS) as pool:
                for done in [pool.submit(delete, c) for c in clusters]:
                    if done.exception() is not None:
                        errors.append(done.exception())
        if self.registry is not None:
            try:
                self.provider.stop_registry(self.runner)
            except Exception as error:  # noqa: BLE001
                errors.append(error)
            self.registry = None
        if self.live:
            # Clusters still being made in the background stop at their next
            # step (or fail, their processes gone); then whatever a half-made
            # cluster or an interrupted step left running is stopped.
            try:
                for thread in self._threads:
                    thread.join(timeout=60)
                for cluster in list(self.clusters.values()):
                    delete(cluster)
                self.provider.cleanup(self.runner)
            except Exception as error:  # noqa: BLE001
                errors.append(error)
            finally:
                kube_cache_back(self._kube_cache)
                shutil.rmtree(self.work, ignore_errors=True)
        if errors:
            raise errors[0]
        return kept


# Where kubectl and flux (client-go's command-line options) keep their cache.
KUBE_CACHE = "KUBECACHEDIR"


def kube_cache_in(work: str) -> str | None:
    """kubectl and flux keep what they learn of a server (discovery, HTTP
    answers) under ~/.kube/cache by default: for the run's clusters, in the
    run's own folder, which goes with it. Returns the setting before."""
    before = os.environ.get(KUBE_CACHE)
    os.environ[KUBE_CACHE] = str(Path(work) / "kube-cache")
    return before


def kube_cache_back(before: str | None) -> None:
    """The setting as it was before ``kube_cache_in``."""
    if before is None:
        os.environ.pop(KUBE_CACHE, None)
    else:
        os.environ[KUBE_CACHE] = before


# How much nicer than the tests a yielding proof's thread, and every process
# it starts, runs.
YIELDING_NICE = 10


def yield_cpu() -> None:
    """Lower this thread's CPU priority by ``YIELDING_NICE`` (to 19 at
    most). On Linux a thread has a nice value of its own, and the processes
    and threads it starts inherit it; elsewhere nothing changes."""
    try:
        me = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, me, min(19, os.getpriority(os.PRIO_PROCESS, me) + YIELDING_NICE))
    except (AttributeError, OSError):
        pass


# What a key of ``once`` makes, for the message of its failure.
SETUP_WHAT = {
    "endpoints": "the tier's git server, registry, charts and first platform release",
    "cluster": "a cluster of the tier",
    "sandbox": "the sandbox cluster (made the way the pages make it)",
}


class SetupFailed(RuntimeError):
    """A part of the tier's setup could not be made. The same error goes to
    every test that needs that part: the first reports it (the message says
    what failed, why, and where), the others are marked not run for it."""

    def __init__(self, what: str, key: str, cause: BaseException):
        self.what, self.key, self.cause = what, key, cause
        if key.startswith("cluster "):
            what = f"the {key.split(' ', 1)[1]} cluster"
        detail = str(cause).strip() or type(cause).__name__
        super().__init__(f"setup of the cluster tier: {what} could not be made\n  "
                         + "\n  ".join(detail.splitlines()))


TIMINGS = "GWP_CLUSTER_TIMINGS"  # a file to write every step's timing to (tests/bench/cluster.py)


# A moment of the run among the timings (a row that starts and ends at once):
# ``mark: development bootstrapped``, when that cluster had Flux running.
MARK = "mark: "


# Signals that end a run from outside: a run terminated (SIGTERM: nox after
# a Ctrl-C, CI's timeout) or whose terminal closed (SIGHUP) unwinds like
# Ctrl-C, so the fixtures' teardown runs.
ENDING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _ended_as_interrupt(signum, frame):
    """A run ended from outside unwinds like Ctrl-C, so fixtures' teardown runs."""
    raise KeyboardInterrupt(f"signal {signum}")
