"""The Flux Operator of a kwok cluster, run as a process on the host, the way
``flux_host`` runs the Flux controllers: its Deployment (from the operator's
``install.yaml``) gets a pod kwok only pretends to run, and the real operator
runs here with the cluster's kubeconfig and that Deployment's arguments.

Rewritten for the host, and nothing else: its listen addresses become ports
of the cluster's range, leader election is off (one process, and outside a
pod it cannot find its lease's namespace), the web UI is off (the build
leaves its assets out), ``RUNTIME_NAMESPACE`` (a field reference in the pod)
is ``flux-system``, and ``--storage-path`` names the Flux manifests the
operator installs from: the same ``config/data`` its image carries in
``/data``, kept beside the binary by the toolchain. It never pulls a
distribution artifact: the FluxInstance names none.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import flux_host, processes

NAME = "flux-operator"


def host_args(args: list[str], ports: flux_host.Addresses, data: Path) -> list[str]:
    """The Deployment's arguments, rewritten for a host process."""
    out = flux_host.host_args(NAME, [a for a in args if not a.startswith(("--storage-path", "--web-server-port"))],
                              ports, data)
    return [*out, f"--storage-path={data}", "--web-server-port=0", "--enable-leader-election=false"]


def start(binary: str, kubectl: str, kubeconfig: str, work: Path, logs: Path, ports: flux_host.Addresses,
          data: Path) -> processes.HostProcess:
    """Start the operator; returns once its health endpoint answers."""
    args, declared_env = flux_host.deployment_args(kubectl, kubeconfig, NAME)
    argv = [binary, *host_args(args, ports, data)]
    tmp = work / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    env = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "SSL_CERT_FILE", "SSL_CERT_DIR")},
        **{k: v for k, v in declared_env.items() if k not in ("GOMEMLIMIT",)},
        "KUBECONFIG": kubeconfig,
        "RUNTIME_NAMESPACE": flux_host.NAMESPACE,
        "HOME": str(work),
        "TMPDIR": str(tmp),
        "GOGC": flux_host.GOGC,
        **flux_host.NO_EGRESS,
    }
    process = processes.start(NAME, argv, logs / f"{NAME}.log", env, cwd=work)
    health = next(a.split("=", 1)[1] for a in argv if a.startswith("--health-addr="))
    processes.wait_port(int(health.rsplit(":", 1)[1]), 120, NAME, process)
    return process
