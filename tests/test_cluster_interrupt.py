"""An interrupted cluster tier leaves nothing behind.

Runs the development bootstrap proof in a child pytest, sends it SIGINT (as
Ctrl-C does) once the cluster's control plane and at least one Flux
controller are running, and then checks that no process of that run is left
and no port of the provider's range is bound. Runs with the cluster tier on
kwok only (``nox -s e2e``), where every process is the tier's own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from cluster import processes, tier
from cluster.providers.kwok import ORDER, PORTS_PER_CLUSTER
from harness.model import PROJECT_ROOT

pytestmark = pytest.mark.cluster
MARKER = "gwp-work-"
BOUND = 600
# The child run's ports, apart from any clusters this run has up already.
CHILD_BASE_PORT = 25000


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


def test_sigint_midway_leaves_no_process_and_no_port(request):
    provider = tier.requested_provider(request.config)
    if provider != "kwok":
        pytest.skip(tier.NOT_REQUESTED if not provider else f"checked on the kwok provider (this run: {provider})")
    from cluster import preflight

    found = preflight.check(provider="kwok")
    if not found.ok:
        pytest.skip(found.skip_reason())
    before = set(processes.processes_with_marker(MARKER))
    child = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "cluster.plugin", "--cluster=kwok", "-p", "no:cacheprovider", "-q",
         "tests/test_cluster.py", "-k", "bootstraps and development"],
        cwd=PROJECT_ROOT, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "GWP_KWOK_BASE_PORT": str(CHILD_BASE_PORT)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + BOUND
        while time.monotonic() < deadline and child.poll() is None:
            running = names_of(ours_now(before))
            if "kube-apiserver" in running and any(n.endswith("-controller") or n.startswith("source-con")
                                                   for n in running):
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"the child run never got as far as the Flux controllers:\n{child.communicate()[0][-3000:]}")
        child.send_signal(signal.SIGINT)
        output = child.communicate(timeout=300)[0]
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    left = ours_now(before)
    deadline = time.monotonic() + 30
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = ours_now(before)
    assert not left, f"processes left after SIGINT: {names_of(left)} ({left})\n{output[-2000:]}"
    ports = range(CHILD_BASE_PORT, CHILD_BASE_PORT + PORTS_PER_CLUSTER * len(ORDER))
    bound = [p for p in ports if processes.port_is_bound(p)]
    assert not bound, f"ports still bound after SIGINT: {bound}"
