"""An interrupted cluster tier leaves nothing behind.

Runs the development bootstrap proof in a child pytest and ends it in the
middle of the work, in each of two ways: SIGINT (as Ctrl-C does), and its
terminal gone (the pipe it prints to closed, then SIGHUP, as when a terminal
or an SSH session closes: the teardown can print nothing). Then it checks
that nothing of that run is left:

- kwok: once the cluster's control plane and at least one Flux controller
  run; then no process of that run is left and no port of the provider's
  range is bound;
- kind: once the cluster's nodes run and flux bootstrap has started; then
  no container, network or kind cluster of the child is left, and, when the
  child started the tier's own dockerd (no engine ran before it, as in CI,
  where this test runs first), no dockerd, containerd, shim or mount of it,
  and Docker's firewall rules as they were before.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from cluster import processes, tier
from cluster.providers.kwok import ORDER, PORTS_PER_CLUSTER
from harness.model import PROJECT_ROOT

pytestmark = pytest.mark.cluster
MARKER = "gwp-work-"
BOUND = 900
# The child run's ports, apart from any clusters this run has up already.
CHILD_BASE_PORT = 25000
# The child's clusters and registry: gwp-int-development, gwp-int-registry.
CHILD_INFIX = "int-"


def ours_now(before: set[int]) -> list[int]:
    return [p for p in processes.processes_with_marker(MARKER) if p not in before]


def names_of(pids: list[int]) -> list[str]:
    out = []
    for pid in pids:
        try:
            out.append(open(f"/proc/{pid}/comm").read().strip())
        except OSError:
            pass
    return out


def temporary() -> set[str]:
    """The folders and files of runs in the temporary directory (``gwp-*``:
    a tier's work directory, the offline tier's API server, a bench's)."""
    return {path.name for path in Path(tempfile.gettempdir()).glob("gwp-*")}


def written_since(folder: Path, moment: float) -> list[str]:
    """Files under ``folder`` changed after ``moment`` (a run's kubectl and
    flux keep their cache in its own folder, never in the user's)."""
    if not folder.is_dir():
        return []
    return sorted(str(p) for p in folder.rglob("*") if p.is_file() and p.stat().st_mtime > moment)


USER_KUBE_CACHE = Path.home() / ".kube" / "cache"


def child_run(provider: str, env: dict) -> subprocess.Popen:
    _SEEN.clear()  # what the previous child printed
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "cluster.plugin", f"--cluster={provider}", "-p", "no:cacheprovider",
         "-q", "-s", "tests/test_cluster.py", "-k", "bootstraps and development"],
        cwd=PROJECT_ROOT, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **env},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


# How a run is ended: (the name in the test's id, whether its console goes first, the signal).
ENDINGS = {"ctrl-c": (False, signal.SIGINT), "terminal-closed": (True, signal.SIGHUP)}


def interrupt(child: subprocess.Popen, ready, what: str, ending: str = "ctrl-c") -> str:
    """Wait until ``ready()``, then end the child as ``ending`` says;
    returns its output (what was read before, when its console went)."""
    try:
        deadline = time.monotonic() + BOUND
        while time.monotonic() < deadline and child.poll() is None:
            if ready():
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"the child run never got as far as {what}:\n{child.communicate()[0][-3000:]}")
        console_goes, sig = ENDINGS[ending]
        if console_goes:
            child.stdout.close()
            child.send_signal(sig)
            child.wait(timeout=600)
            return "".join(_SEEN) + f"\n(the child's output after its console closed is lost; it exited {child.returncode})"
        child.send_signal(sig)
        return "".join(_SEEN) + child.communicate(timeout=600)[0]
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


@pytest.mark.parametrize("ending", list(ENDINGS))
def test_a_run_ended_midway_leaves_nothing_behind(request, ending: str):
    provider = tier.requested_provider(request.config)
    if provider not in ("kwok", "kind"):
        pytest.skip(tier.NOT_REQUESTED)
    from cluster import preflight

    found = preflight.check(provider=provider)
    if not found.ok:
        pytest.skip(found.skip_reason())
    if provider == "kwok":
        interrupted_kwok(ending)
    else:
        interrupted_kind(found.tools["docker"], ending)


def interrupted_kwok(ending: str) -> None:
    before = set(processes.processes_with_marker(MARKER))
    temporary_before, started = temporary(), time.time()
    child = child_run("kwok", {"GWP_KWOK_BASE_PORT": str(CHILD_BASE_PORT)})

    def ready() -> bool:
        running = names_of(ours_now(before))
        return "kube-apiserver" in running and any(n.endswith("-controller") or n.startswith("source-con")
                                                   for n in running)

    output = interrupt(child, ready, "the Flux controllers", ending)
    left = ours_now(before)
    deadline = time.monotonic() + 30
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = ours_now(before)
    assert not left, f"processes left after {ending}: {names_of(left)} ({left})\n{output[-2000:]}"
    ports = range(CHILD_BASE_PORT, CHILD_BASE_PORT + PORTS_PER_CLUSTER * len(ORDER))
    bound = [p for p in ports if processes.port_is_bound(p)]
    assert not bound, f"ports still bound after {ending}: {bound}"
    assert not temporary() - temporary_before, \
        f"temporary folders left after {ending}: {sorted(temporary() - temporary_before)}"
    assert not written_since(USER_KUBE_CACHE, started), \
        f"the run wrote to the user's kube cache: {written_since(USER_KUBE_CACHE, started)[:5]}"


def interrupted_kind(docker: str, ending: str) -> None:
    import docker_engine

    engine_before = docker_engine.own_pid() is not None or docker_engine.answers(docker, None, timeout=10) is None
    firewall_before = docker_engine.docker_rules()
    temporary_before, started = temporary(), time.time()
    child = child_run("kind", {"GWP_RUN_INFIX": CHILD_INFIX})
    prefix = f"gwp-{CHILD_INFIX}"

    def containers() -> list[str]:
        try:
            engine = docker_engine.find(docker, start=False)
        except docker_engine.EngineUnavailable:
            return []
        return [n for n in engine.run("ps", "-a", "--format", "{{.Names}}", check=False).stdout.split()
                if n.startswith(prefix)]

    def ready() -> bool:
        # The cluster's node runs and bootstrap has begun (the child echoes each command).
        return bool(containers()) and os.path.exists(f"/proc/{child.pid}") and _bootstrap_started(child)

    output = interrupt(child, ready, "flux bootstrap on a running node", ending)
    left = containers()
    assert not left, f"containers of the interrupted run left: {left}\n{output[-2000:]}"
    assert not temporary() - temporary_before, \
        f"temporary folders left after {ending}: {sorted(temporary() - temporary_before)}"
    assert not written_since(USER_KUBE_CACHE, started), \
        f"the run wrote to the user's kube cache: {written_since(USER_KUBE_CACHE, started)[:5]}"
    if not engine_before:
        assert docker_engine.own_pid() is None, f"the tier's dockerd still runs after {ending}\n{output[-2000:]}"
        assert not docker_engine.leftover_processes(), \
            f"processes of the tier's engine left: {docker_engine.leftover_processes()}"
        assert not docker_engine.leftover_mounts(), f"mounts left: {docker_engine.leftover_mounts()}"
        from cluster import egress

        assert not egress.leftovers(), f"the egress guard left {egress.leftovers()}"
        assert docker_engine.docker_rules() == firewall_before, \
            f"Docker's firewall rules differ from before the run: {docker_engine.docker_rules()}"


_SEEN: list[str] = []


def _bootstrap_started(child: subprocess.Popen) -> bool:
    """Whether the child's output so far shows ``flux bootstrap`` started.
    Reads what is there without blocking (the pipe is the child's stdout)."""
    import fcntl

    fd = child.stdout.fileno()
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
    try:
        chunk = os.read(fd, 1 << 16).decode(errors="replace")
    except BlockingIOError:
        chunk = ""
    _SEEN.append(chunk)
    return "flux bootstrap git" in "".join(_SEEN)
