"""Clusters without Docker: a real control plane run as host processes by
``kwokctl --runtime binary``, and the real Flux controllers beside it.

What is real: etcd, kube-apiserver (with its admission: Pod Security,
ValidatingAdmissionPolicy, quotas), kube-controller-manager (garbage
collection, namespace deletion, Deployments and ReplicaSets), kube-scheduler,
and the four Flux controllers, which run here as processes with the
cluster's kubeconfig (``flux_host``). What kwok simulates: one node, and every
pod on it, which it marks Running and Ready at once. Nothing runs in a pod:
no image is pulled, no probe, volume, Service traffic or NetworkPolicy takes
effect, a Job's pods complete without running, and no admission webhook
served by a pod can answer. This provider therefore turns webhook admission
off (``--disable-admission-plugins``), and says so in the report.

Each cluster gets its own kwok work directory and ``HOME`` under the tier's
temporary directory (kwokctl would otherwise edit ``~/.kube/config``), a
fixed range of ports on 127.0.0.1 (parallel creates with random ports race),
and its own readiness check, since ``kwokctl create`` can return 0 for a
cluster whose API server never came up.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

from .. import flux_host, names, processes
from ..plan import Step
from ..runner import Recorder
from . import (BOOTSTRAP_ATTEMPTS, TURN_ENDS, Cluster, Endpoints, Provider, bootstrap_lock, kube_args,
                pushed_concurrently)

# Every cluster owns PORTS_PER_CLUSTER consecutive ports from BASE_PORT + its
# index. The first six are the control plane's, the rest the controllers'.
# The range lies below Linux's ephemeral ports (32768-60999), which outgoing
# connections take at random. $GWP_KWOK_BASE_PORT moves it (a second run beside a first).
BASE_PORT = int(os.environ.get("GWP_KWOK_BASE_PORT", "21000"))
PORTS_PER_CLUSTER = 40
ORDER = (*names.LONG_LIVED, names.SANDBOX, *names.PROOF_CLUSTERS)
CREATE_BOUND = 300
# Seconds a deleted cluster's control plane and Flux controllers get to exit
# on SIGTERM before SIGKILL. Measured: kwok-controller and
# kube-controller-manager exit at once; etcd, kube-apiserver and
# kube-scheduler were still running 5 s later, and one Flux controller took
# the 10 s it was given.
DELETE_GRACE = 2

READY_BOUND = 180
# Admission plugins that call webhooks served by pods, which no pod here can
# serve (cert-manager's webhook, for one).
WEBHOOK_PLUGINS = "MutatingAdmissionWebhook,ValidatingAdmissionWebhook"

SIMULATED = (
    "kwok provider: the control plane (etcd, kube-apiserver, controller-manager, scheduler) and the Flux "
    "controllers are real processes; the node and every pod are simulated by kwok (pods are Running and Ready "
    "at once, nothing runs in them: no image pull, probe, volume, Service traffic or NetworkPolicy takes effect, "
    "Helm hook Jobs complete without running, a PersistentVolumeClaim stays Pending), admission webhooks are "
    "turned off because no pod can serve them (cert-manager issues nothing), and a webhook delivery to a Receiver "
    "goes straight to the notification-controller's listener on the host (no Service, Ingress or network policy "
    "on the way)"
)

FAKE_NODE = """apiVersion: v1
kind: Node
metadata:
  name: kwok-node-0
  annotations:
    node.alpha.kubernetes.io/ttl: "0"
    kwok.x-k8s.io/node: fake
  labels:
    kubernetes.io/arch: amd64
    kubernetes.io/hostname: kwok-node-0
    kubernetes.io/os: linux
    kubernetes.io/role: agent
    node-role.kubernetes.io/agent: ""
    type: kwok
status:
  allocatable: {cpu: "32", memory: 128Gi, pods: "250"}
  capacity: {cpu: "32", memory: 128Gi, pods: "250"}
  nodeInfo: {architecture: amd64, operatingSystem: linux, kubeletVersion: fake, kubeProxyVersion: fake}
"""


class KwokProvider(Provider):
    name = "kwok"
    simulated = SIMULATED
    # A cluster is a few processes: the proofs on clusters of their own (the
    # private fork's, then the Flux Operator's) run beside the page blocks
    # instead of after them.
    proofs_ahead = True

    def __init__(self, tools: dict[str, str], work: str, root: str):
        self.tools = tools
        self.work = work
        self.root = Path(root)
        self.kwokctl = tools.get("kwokctl", "kwokctl")
        self.kubectl = tools.get("kubectl", "kubectl")
        self.controllers: dict[str, list[processes.HostProcess]] = {}

    # -- layout ----------------------------------------------------------------

    def base_port(self, target: str) -> int:
        return BASE_PORT + ORDER.index(target) * PORTS_PER_CLUSTER

    def control_plane_ports(self, target: str) -> dict[str, int]:
        base = self.base_port(target)
        return {"kube-apiserver": base, "etcd": base + 1, "etcd peer": base + 2,
                "kube-controller-manager": base + 3, "kube-scheduler": base + 4, "kwok-controller": base + 5}

    def controller_ports(self, target: str) -> flux_host.Addresses:
        base = self.base_port(target)
        return flux_host.Addresses(events=base + 10, storage=base + 11, first_free=base + 12,
                                   last=base + PORTS_PER_CLUSTER - 1)

    def home(self, target: str) -> str:
        return f"{self.work}/kwok-{target}"

    def kwok_workdir(self, target: str) -> str:
        return f"{self.home(target)}/.kwok"

    def kubeconfig(self, target: str) -> str:
        return f"{self.kwok_workdir(target)}/clusters/{names.cluster_name(target)}/kubeconfig.yaml"

    def logs(self, target: str) -> Path:
        return Path(self.home(target)) / "logs"

    def env(self, target: str) -> dict[str, str]:
        return {"HOME": self.home(target), "KWOK_WORKDIR": self.kwok_workdir(target), "KUBECONFIG": ""}

    def config(self, target: str) -> str:
        """kwokctl's configuration: the toolchain's binaries, loopback only,
        this cluster's ports, admission on except for webhooks."""
        ports = self.control_plane_ports(target)
        binaries = {
            "kubeApiserverBinary": self.tools.get("kube-apiserver", "kube-apiserver"),
            "kubeControllerManagerBinary": self.tools.get("kube-controller-manager", "kube-controller-manager"),
            "kubeSchedulerBinary": self.tools.get("kube-scheduler", "kube-scheduler"),
            "kubectlBinary": self.kubectl,
            "etcdBinary": self.tools.get("etcd", "etcd"),
            "kwokControllerBinary": self.tools.get("kwok", "kwok"),
        }
        options = {
            "runtime": "binary",
            "bindAddress": "127.0.0.1",
            "kubeApiserverPort": ports["kube-apiserver"],
            "etcdPort": ports["etcd"],
            "etcdPeerPort": ports["etcd peer"],
            "kubeControllerManagerPort": ports["kube-controller-manager"],
            "kubeSchedulerPort": ports["kube-scheduler"],
            "kwokControllerPort": ports["kwok-controller"],
            "kubeAuthorization": True,
            "kubeAdmission": True,
            **binaries,
        }
        gc = [{"name": "GOGC", "value": flux_host.GOGC}]  # as for the controllers
        patches = [
            {"name": "kube-apiserver", "extraArgs": [
                {"key": "advertise-address", "value": "127.0.0.1"},
                {"key": "disable-admission-plugins", "value": WEBHOOK_PLUGINS},
            ], "extraEnvs": gc},
            *({"name": name, "extraEnvs": gc}
              for name in ("etcd", "kube-controller-manager", "kube-scheduler", "kwok-controller")),
        ]
        doc = {"apiVersion": "config.kwok.x-k8s.io/v1alpha1", "kind": "KwokctlConfiguration",
               "options": options, "componentsPatches": patches}
        return json.dumps(doc, indent=2) + "\n"

    def config_path(self, target: str) -> str:
        return f"{self.home(target)}/kwokctl.yaml"

    # -- lifecycle -------------------------------------------------------------

    def create(self, target: str, runner: Recorder) -> Cluster:
        name = names.cluster_name(target)
        cluster = Cluster(target, name, kube_context(target), self.kubeconfig(target))
        if runner.live:
            processes.require_free(self.control_plane_ports(target), f"{target} (kwok)")
            Path(self.kwok_workdir(target)).mkdir(parents=True, exist_ok=True)
            Path(self.config_path(target)).write_text(self.config(target), encoding="utf-8")
        runner.run(Step(
            [self.kwokctl, f"--config={self.config_path(target)}", "create", "cluster", f"--name={name}",
             "--runtime=binary", "--kubeconfig=", f"--timeout={CREATE_BOUND}s"],
            note=f"{target}: control plane as host processes (kwokctl --runtime binary), config {self.config_path(target)}",
            env=self.env(target), timeout=CREATE_BOUND + 60,
        ))
        return cluster

    def wait_ready(self, cluster: Cluster, runner: Recorder) -> None:
        """The API server answers /readyz, then a fake node is Ready."""
        step = Step([self.kubectl, *kube_args(cluster), "get", "--raw=/readyz"],
                    note=f"{cluster.target}: wait until the API server is ready (kwokctl may exit 0 without it)",
                    timeout=30)
        if not runner.live:
            runner.run(step)
        else:
            deadline = time.monotonic() + READY_BOUND
            while True:
                proc = subprocess.run(step.argv, capture_output=True, text=True, timeout=30)
                if proc.returncode == 0 and proc.stdout.strip() == "ok":
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{cluster.target}: kwokctl created {cluster.name} but its API server was not ready "
                        f"within {READY_BOUND}s ({(proc.stderr or proc.stdout).strip()[-300:]}); "
                        f"the control plane's logs are in {self.kwok_workdir(cluster.target)}/clusters/{cluster.name}/logs"
                    )
                time.sleep(1)
        runner.run(Step([self.kubectl, *kube_args(cluster), "apply", "--server-side", "-f", "-"],
                        note=f"{cluster.target}: one node, simulated by kwok", stdin=FAKE_NODE,
                        context=cluster.context, kubeconfig=cluster.kubeconfig, timeout=60))
        runner.run(Step([self.kubectl, *kube_args(cluster), "wait", "--for=condition=Ready", "node/kwok-node-0",
                         "--timeout=120s"], note=f"{cluster.target}: the node is Ready",
                        context=cluster.context, kubeconfig=cluster.kubeconfig, timeout=150))

    def delete(self, cluster: Cluster, runner: Recorder) -> None:
        # The cluster is going: its controllers need no graceful shutdown
        # either (one took 10 s to stop on SIGTERM, holding up the teardown).
        processes.stop_all(self.controllers.pop(cluster.target, []), grace=DELETE_GRACE)
        pids = self.control_plane_pids(cluster.target)
        runner.run(Step([self.kwokctl, "delete", "cluster", f"--name={cluster.name}", "--kubeconfig="],
                        note=f"{cluster.target}: delete the kwok cluster", env=self.env(cluster.target),
                        timeout=120), check=False)
        if runner.live:
            # kwokctl returns with the control plane still running (measured:
            # all five processes were alive 30 s later, every time), so the
            # tier ends them itself; the cluster is going, nothing needs a
            # graceful shutdown.
            processes.terminate_pids(pids, grace=DELETE_GRACE)
            shutil.rmtree(self.home(cluster.target), ignore_errors=True)

    def control_plane_pids(self, target: str) -> list[int]:
        """The PIDs kwokctl recorded for the cluster's processes."""
        folder = Path(self.kwok_workdir(target)) / "clusters" / names.cluster_name(target) / "pids"
        pids = []
        for pid_file in folder.glob("*.pid"):
            try:
                pids.append(int(pid_file.read_text().strip()))
            except (OSError, ValueError):
                continue
        return pids

    def host_address(self, runner: Recorder) -> tuple[str, str]:
        # The controllers run on the host: they reach loopback services directly.
        return "127.0.0.1", "127.0.0.1"

    def start_registry(self, runner: Recorder):
        from .. import registry

        made, self.registry_process = registry.host_start(self.tools.get("registry", "registry"), self.work, runner)
        return made

    def stop_registry(self, runner: Recorder) -> None:
        process = getattr(self, "registry_process", None)
        if process is not None:
            process.stop()
            self.registry_process = None

    # -- Flux ------------------------------------------------------------------

    def install_flux(self, cluster: Cluster, endpoints: Endpoints, runner: Recorder, flux: str,
                     path: str | None = None, branch: str = names.DEFAULT_BRANCH, watch=None) -> None:
        """``flux bootstrap git`` as on any cluster; as soon as it has applied
        the controllers' CRDs and Deployments, their real processes start on
        the host with the arguments those Deployments declare, and do the
        work bootstrap then waits for."""
        step = self.bootstrap_step(cluster, endpoints, flux, path, branch)
        if not runner.live:
            self.install_flux_with(cluster, runner, step)
            return
        # The branch is this bootstrap's until its source holds its commit;
        # the waiting that follows overlaps the next cluster's bootstrap.
        lock = bootstrap_lock(branch)
        lock.acquire()
        held, once = [True], threading.Lock()

        def release() -> None:  # from this thread or the one that reads bootstrap's log
            with once:
                if held[0]:
                    held[0] = False
                    lock.release()

        try:
            self._bootstrap(cluster, runner, step, watch, release)
        finally:
            release()

    def install_flux_with(self, cluster: Cluster, runner: Recorder, step: Step) -> None:
        """Another command that installs Flux (the pages' bootstrap script):
        run like ``flux bootstrap``, the controllers started on the host as
        soon as it has applied their Deployments."""
        if not runner.live:
            runner.run(step)
            runner.call(Step(["start", *flux_host.CONTROLLERS, "as host processes, KUBECONFIG=" + cluster.kubeconfig],
                             note=f"{cluster.target}: the Flux controllers run on the host (their Deployments' "
                                  "pods are kwok's)", in_process=True), lambda: None)
            return
        self._bootstrap(cluster, runner, step)

    def _bootstrap(self, cluster: Cluster, runner: Recorder, step: Step, watch=None, turn_over=None) -> None:
        for attempt in range(1, BOOTSTRAP_ATTEMPTS + 1):
            log = self.logs(cluster.target) / "flux-bootstrap.log"
            earlier = log.stat().st_size if log.exists() else 0  # an attempt before this one (appended)
            bootstrap = runner.start(step, log)
            reading = threading.Event()
            if turn_over is not None:
                # bootstrap's log, read often: the next cluster's turn starts
                # as soon as this one's ends
                threading.Thread(target=_until_turn_ends, args=(log, earlier, reading, turn_over), daemon=True,
                                 name=f"{cluster.target}-turn").start()
            try:
                if cluster.target not in self.controllers:
                    self.start_controllers(cluster, bootstrap, runner, step.timeout or 900)
                runner.finish(bootstrap, step, while_waiting=watch)
                return
            except Exception:
                bootstrap.stop()
                if attempt < BOOTSTRAP_ATTEMPTS and pushed_concurrently(bootstrap.tail(15)):
                    runner.echo(f"+ {cluster.target}: another cluster's bootstrap pushed to the branch first; "
                                "bootstrap again (rerunning it is safe)")
                    time.sleep(attempt)
                    continue
                raise
            except BaseException:
                bootstrap.stop()
                raise
            finally:
                reading.set()

    def start_controllers(self, cluster: Cluster, bootstrap, runner: Recorder, bound: float) -> None:
        present = self.wait_for_controllers(cluster, bootstrap, bound)
        binaries = {name: self.tools[name] for name in flux_host.CONTROLLERS if name in self.tools}
        missing = [n for n in present if n not in binaries]
        if missing:
            raise RuntimeError(f"{cluster.target}: no binary for {', '.join(missing)}: run `nox -s tools -- --tier kwok`")
        runner.echo(f"+ {cluster.target}: start {', '.join(present)} on the host")
        self.controllers[cluster.target] = flux_host.start_all(
            binaries, self.kubectl, cluster.kubeconfig, Path(self.home(cluster.target)) / "flux",
            self.logs(cluster.target), self.controller_ports(cluster.target), present)

    def wait_for_controllers(self, cluster: Cluster, bootstrap: processes.HostProcess, bound: float) -> list[str]:
        """Until bootstrap has applied the Flux CRDs (Established) and the
        controllers' Deployments; returns the controllers it installed."""
        deadline = time.monotonic() + bound
        crds = ["gitrepositories.source.toolkit.fluxcd.io", "kustomizations.kustomize.toolkit.fluxcd.io"]
        while time.monotonic() < deadline:
            if not bootstrap.alive():
                raise RuntimeError(f"{cluster.target}: {bootstrap.name} exited ({bootstrap.proc.returncode}) before "
                                   f"the controllers were installed:\n{bootstrap.tail(30)}")
            proc = subprocess.run([self.kubectl, *kube_args(cluster), "get", "crd", *crds, "-o", "json"],
                                  capture_output=True, text=True, timeout=30)
            if proc.returncode == 0 and _all_established(proc.stdout):
                deployments = subprocess.run(
                    [self.kubectl, *kube_args(cluster), "-n", flux_host.NAMESPACE, "get", "deployments",
                     "-o", "jsonpath={.items[*].metadata.name}"], capture_output=True, text=True, timeout=30)
                present = [n for n in flux_host.CONTROLLERS if n in deployments.stdout.split()]
                if "source-controller" in present and "kustomize-controller" in present:
                    return present
            time.sleep(1)
        raise TimeoutError(f"{cluster.target}: flux bootstrap did not install the controllers within {bound:.0f}s:\n"
                           f"{bootstrap.tail(30)}")

    @contextlib.contextmanager
    def receiver_url(self, cluster: Cluster, runner: Recorder):
        """The notification-controller runs on the host (flux_host): a
        delivery goes straight to its receiver's listener, a port of the
        cluster's range. No Service, Ingress or network policy is on the way."""
        process = next((p for p in self.controllers.get(cluster.target, []) if p.name == "notification-controller"),
                       None)
        if process is None:
            if runner.live:
                raise RuntimeError(f"{cluster.target}: no notification-controller runs for this cluster")
            yield "http://127.0.0.1:$RECEIVER_PORT"
            return
        address = next(a.split("=", 1)[1] for a in process.argv if a.startswith("--receiverAddr="))
        yield f"http://{address}"

    def operator_ports(self, target: str) -> flux_host.Addresses:
        """The last ports of the cluster's range (the Flux controllers take
        theirs from the start of the free ones)."""
        base = self.base_port(target)
        return flux_host.Addresses(events=base + 10, storage=base + 11, first_free=base + PORTS_PER_CLUSTER - 4,
                                   last=base + PORTS_PER_CLUSTER - 1)

    def operator_problem(self) -> str | None:
        return None

    def run_operator(self, cluster: Cluster, runner: Recorder, binary: str, data: str) -> None:
        """The operator's pod is kwok's: the real operator runs on the host
        (operator_host), and once it has applied the Flux controllers'
        CRDs and Deployments, the controllers start on the host with those
        Deployments' arguments, as after ``flux bootstrap``."""
        from .. import operator_host

        step = Step([binary, "(the Deployment's arguments, for the host)", f"--storage-path={data}",
                     "--web-server-port=0", "--enable-leader-election=false"],
                    note=f"{cluster.target}: the Flux Operator runs on the host (its Deployment's pod is kwok's)",
                    in_process=True)
        made: list = []
        runner.call(step, lambda: made.append(operator_host.start(
            binary, self.kubectl, cluster.kubeconfig, Path(self.home(cluster.target)) / "operator",
            self.logs(cluster.target), self.operator_ports(cluster.target), Path(data))))
        if not runner.live:
            runner.call(Step(["start", *flux_host.CONTROLLERS, "as host processes once the operator applied them"],
                             note=f"{cluster.target}: the Flux controllers the operator installs run on the host",
                             in_process=True), lambda: None)
            return
        operator = made[0]
        try:
            self.start_controllers(cluster, operator, runner, 600)
        except BaseException:
            operator.stop()
            raise
        self.controllers[cluster.target].append(operator)

    def controller_logs(self, cluster: Cluster) -> dict[str, Path]:
        logs = self.logs(cluster.target)
        return {p.stem: p for p in sorted(logs.glob("*.log"))} if logs.is_dir() else {}

    def leftovers(self) -> list[int]:
        """Processes of this run still alive (each names the work directory
        in its command line, working directory or KUBECONFIG)."""
        return processes.processes_with_marker(self.work)

    def cleanup(self, runner: Recorder) -> None:
        for target in list(self.controllers):
            processes.stop_all(self.controllers.pop(target), grace=DELETE_GRACE)
        self.stop_registry(runner)
        for target in ORDER:
            if Path(self.kwok_workdir(target)).is_dir():
                runner.run(Step([self.kwokctl, "delete", "cluster", f"--name={names.cluster_name(target)}",
                                 "--kubeconfig="], note=f"{target}: delete what a failed create left",
                                env=self.env(target), timeout=120), check=False)
        left = self.leftovers()
        if left:
            runner.echo(f"+ kill {' '.join(map(str, left))}  # processes of this run still running")
            processes.kill_pids(left)
            processes.wait_pids_gone(left, 15)

    def ports(self) -> list[int]:
        """Every port this provider's clusters may bind."""
        return [p for target in ORDER for p in range(self.base_port(target), self.base_port(target) + PORTS_PER_CLUSTER)]


def kube_context(target: str) -> str:
    """The context kwokctl writes for a cluster: ``kwok-gwp-staging``."""
    return f"kwok-{names.cluster_name(target)}"


# How often a bootstrap's log is read for the end of its turn (``TURN_ENDS``).
TURN_READ_EVERY = 0.5


def _until_turn_ends(log: Path, offset: int, stop: threading.Event, turn_over) -> None:
    """Call ``turn_over`` once this attempt's part of bootstrap's log shows
    the end of its turn; give up when ``stop`` is set (bootstrap ended)."""
    while not stop.wait(TURN_READ_EVERY):
        try:
            with open(log, "rb") as handle:
                handle.seek(offset)
                text = handle.read().decode(errors="replace")
        except OSError:
            continue
        if any(marker in text for marker in TURN_ENDS):
            turn_over()
            return


def _all_established(listing: str) -> bool:
    try:
        items = json.loads(listing).get("items", [])
    except ValueError:
        return False
    return bool(items) and all(
        any(c.get("type") == "Established" and c.get("status") == "True"
            for c in ((i.get("status") or {}).get("conditions") or []))
        for i in items
    )


