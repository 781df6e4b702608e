"""The Flux controllers of a kwok cluster, run as processes on the host.

kwok runs no containers: the controllers' Deployments that ``flux bootstrap``
applies get pods that kwok marks Running and Ready, but nothing runs in them.
The real controllers run here instead, one process each, with the cluster's
kubeconfig (they read ``KUBECONFIG``; there is no flag).

Each process gets the arguments its Deployment in the cluster declares, as
bootstrap applied them (the tree's own patches to the controllers included),
with only what cannot work on the host rewritten: listen and advertised
addresses become ``127.0.0.1`` ports of this cluster's own range, the storage
path a folder of the run, ``$(RUNTIME_NAMESPACE)`` its value. Leader
election is left off: each controller runs as one process, and
controller-runtime can find the namespace of its lease only inside a pod.

One flag is added: ``--requeue-dependency=1s`` for kustomize- and
helm-controller, which retry an object whose ``dependsOn`` is not ready yet
every second instead of every 30 s. It changes when a dependent is retried,
not what is applied (a cluster's chain of layers, from its source Ready to
apps Ready, took 36 s with 5 s and 24 s with 1 s).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from . import processes

# Added to the Deployments' arguments (see above).
EXTRA_ARGS = {
    "kustomize-controller": ["--requeue-dependency=1s"],
    "helm-controller": ["--requeue-dependency=1s"],
}
# Go's garbage collector runs at half the default heap growth in every
# process of a kwok cluster, these controllers and its control plane
# (providers/kwok.py): four clusters side by side fit in less memory, for a
# little more CPU. It changes when memory is reclaimed, nothing else.
GOGC = "50"
CONTROLLERS = ("source-controller", "kustomize-controller", "helm-controller", "notification-controller")
NAMESPACE = "flux-system"
_LISTEN = re.compile(r"^(?P<flag>--[\w-]+)=(?P<host>[\w.-]*):(?P<port>\d+)$")


@dataclass
class Addresses:
    """The host ports one cluster's controllers use."""

    events: int  # notification-controller's event receiver; every other controller posts there
    storage: int  # source-controller's artifact server
    first_free: int  # where the rest (metrics, health, webhook receiver) are taken from
    last: int

    def __post_init__(self) -> None:
        self._next = self.first_free

    def take(self) -> int:
        if self._next > self.last:
            raise RuntimeError("the cluster's port range is used up; widen providers.kwok.PORTS_PER_CLUSTER")
        port, self._next = self._next, self._next + 1
        return port


def deployment_args(kubectl: str, kubeconfig: str, name: str) -> tuple[list[str], dict[str, str]]:
    """The manager container's args and plain env values of a Deployment."""
    proc = subprocess.run([kubectl, f"--kubeconfig={kubeconfig}", "-n", NAMESPACE, "get", f"deployment/{name}",
                           "-o", "json"], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"cannot read deployment {NAMESPACE}/{name}: {proc.stderr.strip()}")
    spec = json.loads(proc.stdout)["spec"]["template"]["spec"]
    container = next((c for c in spec["containers"] if c.get("name") == "manager"), spec["containers"][0])
    env = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    return list(container.get("args", [])), env


def host_args(name: str, args: list[str], ports: Addresses, storage: Path) -> list[str]:
    """Rewrite a controller's in-cluster arguments for a host process."""
    out = []
    for arg in args:
        arg = arg.replace("$(RUNTIME_NAMESPACE)", NAMESPACE)
        flag = arg.split("=", 1)[0]
        if flag == "--events-addr" and name != "notification-controller":
            out.append(f"--events-addr=http://127.0.0.1:{ports.events}/")
        elif flag == "--events-addr":
            out.append(f"--events-addr=127.0.0.1:{ports.events}")
        elif flag in ("--storage-addr", "--storage-adv-addr"):
            out.append(f"{flag}=127.0.0.1:{ports.storage}")
        elif flag == "--storage-path":
            out.append(f"--storage-path={storage}")
        elif flag == "--enable-leader-election":
            continue
        elif _LISTEN.match(arg):
            out.append(f"{flag}=127.0.0.1:{ports.take()}")
        else:
            out.append(arg)
    flags = {a.split("=", 1)[0] for a in out}
    if name == "notification-controller":
        # Its listen addresses default to every interface: bind loopback, and
        # the event receiver where the other controllers post.
        if "--events-addr" not in flags:
            out.append(f"--events-addr=127.0.0.1:{ports.events}")
        if "--receiverAddr" not in flags:
            out.append(f"--receiverAddr=127.0.0.1:{ports.take()}")
    if name == "source-controller":
        # Defaults that point into the cluster when the Deployment leaves them out.
        for flag, value in (("--storage-path", str(storage)), ("--storage-addr", f"127.0.0.1:{ports.storage}"),
                            ("--storage-adv-addr", f"127.0.0.1:{ports.storage}")):
            if flag not in flags:
                out.append(f"{flag}={value}")
    for flag in ("--metrics-addr", "--health-addr"):
        if flag not in flags:
            out.append(f"{flag}=127.0.0.1:{ports.take()}")
    for extra in EXTRA_ARGS.get(name, []):
        if extra.split("=", 1)[0] not in flags:
            out.append(extra)
    return out


# A host controller that tries to reach a host off the machine (the tree's
# placeholder git URL, which bootstrap applies before it writes its own
# sync manifests; an alert Provider's API) goes through a proxy on a closed
# loopback port and fails at once: no packet, not even a DNS query, leaves
# the machine. Everything the tier serves is on loopback, never proxied.
DEAD_PROXY = "http://127.0.0.1:1"
NO_EGRESS = {name: value for key, value in (("https_proxy", DEAD_PROXY), ("http_proxy", DEAD_PROXY),
                                            ("no_proxy", "127.0.0.1,localhost,::1"))
             for name in (key, key.upper())}


def start_all(binaries: dict[str, str], kubectl: str, kubeconfig: str, work: Path, logs: Path,
              ports: Addresses, present: list[str]) -> list[processes.HostProcess]:
    """Start every controller of ``present`` (those bootstrap installed)."""
    started = []
    tmp = work / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    for name in CONTROLLERS:
        if name not in present:
            continue
        args, declared_env = deployment_args(kubectl, kubeconfig, name)
        argv = [binaries[name], *host_args(name, args, ports, work / "storage")]
        env = {
            **{k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "SSL_CERT_FILE", "SSL_CERT_DIR")},
            **{k: v for k, v in declared_env.items() if k not in ("GOMEMLIMIT",)},
            "KUBECONFIG": kubeconfig,
            "RUNTIME_NAMESPACE": NAMESPACE,
            "HOME": str(work),
            "TMPDIR": str(tmp),
            "TUF_ROOT": str(work / "sigstore"),
            "GOGC": GOGC,
            **NO_EGRESS,
        }
        if name == "source-controller":
            (work / "storage").mkdir(parents=True, exist_ok=True)
        started.append(processes.start(name, argv, logs / f"{name}.log", env, cwd=work))
    # Each serves its health endpoint once its manager runs: a controller
    # that exits at start (a port taken, a flag refused) is an error here,
    # with its log, not a cluster that never becomes ready.
    for process in started:
        health = next(a.split("=", 1)[1] for a in process.argv if a.startswith("--health-addr="))
        processes.wait_port(int(health.rsplit(":", 1)[1]), 120, process.name, process)
    return started
