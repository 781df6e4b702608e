"""kind clusters made from the tree's own configs (``create/<target>.yaml``),
with real nodes and pods, on this machine alone.

- **The engine**: the user's Docker, or the tier's own dockerd on a private
  socket (``docker_engine``), stopped at the end.
- **The network**: the tier's own Docker network ``gwp-kind`` (bridge
  ``gwp-kind0``, no masquerading), given to kind through
  ``KIND_EXPERIMENTAL_DOCKER_NETWORK``, so the clusters never share kind's
  default network with a reader's own clusters; the host's address on it
  (its gateway) serves the git server and the registry to both the host and
  the pods, at one address. ``egress`` keeps every packet on the machine.
- **The config**: ``create/<target>.yaml`` as the reader uses it, with only
  what the tier must change, each said in the plan: the cluster's name; the
  node image the toolchain built (``nox -s tools -- --tier kind``; the tree
  keeps its ``kindest/node`` pin for readers); no default CNI (kindnetd is
  not built here: each node gets a static CNI configuration for its pod
  subnet and routes to the other nodes' subnets, written by the tier); and
  on a cgroup v1 host the kubelet's ``failCgroupV1: false``.
- **The images**: every image the workloads run, built from source by the
  toolchain (the ``kind-images`` recipe), under the names the manifests and
  charts ask for; nothing is pulled. A cluster's nodes get the images that
  cluster can run (``node_images``), and only the nodes a workload pod can
  be scheduled on get them (``workload_nodes``: the control plane of a
  cluster with workers is tainted, and nothing in the tree tolerates that).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import platform
import threading
import time
from pathlib import Path

import yaml

import yamlload

from .. import egress, names
from ..plan import GATEWAY, Step
from ..runner import Recorder
from . import Cluster, Provider, kube_args

NETWORK = "gwp-kind"
LABEL = "org.gitops-whitepaper.harness=cluster-tier"
NODE_IMAGE = "gwp.local/kind-node:{key}"
# kind makes clusters one at a time here: side by side, each `kind create`
# fights the others for two cores and the kubelets' start-up times out.
CREATE_LOCK = threading.Lock()
READY_BOUND = 300
CNI_FILE = "/etc/cni/net.d/10-gwp-static.conflist"
# Every node's kubelet, kube-proxy and containerd watch files: with eight
# nodes, Linux's default 128 inotify instances per user run out ("too many
# open files"). The tier raises these (to the values kind's known issues
# suggest) for the run, and puts the old values back after it.
INOTIFY = {"fs.inotify.max_user_instances": 512, "fs.inotify.max_user_watches": 524288}

SIMULATED = (
    "kind provider: real nodes (Docker containers running systemd, containerd and the kubelet) and real pods from "
    "images built here from source. Not real here: NetworkPolicy is stored but not enforced (no policy "
    "controller: this machine's kernel lacks what kind's needs, and kindnetd is not built here); pod networking "
    "is a static CNI configuration per node (ptp, host-local, routes between the nodes) instead of kindnetd; the "
    "node image is built here at the Kubernetes version the module proxy serves (see the testing page), not "
    "the digest-pinned kindest/node image of create/*.yaml; cert-manager's programs come from the prebuilt "
    "folder (their images are made here, their binaries are not built here); the Flux Operator asks for its "
    "controllers by the digests of Flux's published images, which builds from source cannot have: the tier "
    "names its builds by those digests in the nodes of the operator's cluster, and the operator's image names its "
    "base (the tier's Debian static base) distroless in /etc/os-release, which the operator's preflight asks for"
)


def cgroup_v1() -> bool:
    return not Path("/sys/fs/cgroup/cgroup.controllers").exists()


REAL = ("nodes and pods: kubelet, containerd and runc run every pod from its image (built here from source), "
        "probes, volumes, Services and DNS carry traffic, admission webhooks answer (cert-manager's), Helm hook "
        "Jobs run, PersistentVolumeClaims are provisioned; the control plane (kubeadm's static pods) and the "
        "Flux controllers run as pods, installed by flux bootstrap; every packet stays on the machine (egress guard)")


class KindProvider(Provider):
    name = "kind"
    simulated = SIMULATED
    real = REAL
    runs_pods = True
    # The proofs' clusters (one node, then three), one at a time, beside the
    # four of the run: about 8.5 GiB at the peak, within the tier's 10 GiB,
    # and about six minutes less than making them after the others are idle.
    proofs_ahead = True

    def __init__(self, tools: dict[str, str], work: str, root: str):
        self.kind = tools.get("kind", "kind")
        self.kubectl = tools.get("kubectl", "kubectl")
        self.docker = tools.get("docker", "docker")
        self.work = work
        self.root = Path(root)
        self.engine = None
        self.guard = egress.HostGuard()
        self.gateway: str | None = None
        self.registry_port: str | None = None
        self.notes: list[str] = []
        self._setup_lock = threading.Lock()
        self._setup_done = False
        self._workload_nodes: dict[str, list[str]] = {}

    # -- what the tier runs on ----------------------------------------------

    def docker_env(self) -> dict[str, str]:
        env = {"KIND_EXPERIMENTAL_DOCKER_NETWORK": NETWORK}
        if self.engine is not None:
            env.update(self.engine.env())
        return env

    def images(self) -> tuple[str, str, dict]:
        """(node image archive, workload images archive, the workload images'
        build record) from the toolchain's cache."""
        from toolchain import cache, pins

        tools = pins.tools(self.root)
        node, workloads = tools["kind-node"], tools["kind-images"]
        for tool in (node, workloads):
            if cache.record(tool) is None:
                raise FileNotFoundError(f"{tool.name} {tool.version} is not built: run `nox -s tools -- --tier kind`")
        return (str(cache.binary(node, "node-image.tar")), str(cache.binary(workloads, "images.tar")),
                cache.record(workloads) or {})

    def node_images(self, target: str) -> list[str]:
        """The workload images ``target``'s nodes get: the Flux Operator's
        cluster the operator and the controllers it installs; every other
        cluster bootstrap's controllers; all of them what the tree's charts
        run; the long-lived ones the tier's client pod too (the podinfo and
        egress checks). The registry runs in the engine, in no node."""
        wanted = ["charts"]
        wanted += ["operator"] if target == names.OPERATOR else ["flux"]
        wanted += ["client"] if target in names.LONG_LIVED else []
        groups = self.images()[2].get("groups") or {}
        missing = [g for g in wanted if not groups.get(g)]
        if missing:
            raise RuntimeError(f"the kind-images record names no {', '.join(missing)} images: rebuild it "
                               "(`nox -s tools -- --tier kind`)")
        return list(dict.fromkeys(name for g in wanted for name in groups[g]))

    def workload_nodes(self, cluster: Cluster) -> list[str]:
        """The nodes a workload pod can be scheduled on (recorded by
        ``wait_ready``; every node before that)."""
        return self._workload_nodes.get(cluster.name) or self.nodes(cluster)

    def node_image(self) -> str:
        from toolchain import pins

        return NODE_IMAGE.format(key=pins.tools(self.root)["kind-node"].version)

    def setup(self, runner: Recorder) -> None:
        """Once per run: the engine, the images in it, the network, the guard."""
        with self._setup_lock:
            if self._setup_done:
                return
            self._setup(runner)
            self._setup_done = True

    def _setup(self, runner: Recorder) -> None:
        node_tar, images_tar, record = self.images() if runner.live else ("$NODE_IMAGE_TAR", "$IMAGES_TAR", {})
        if runner.live:
            import docker_engine

            self.engine = docker_engine.find(self.docker)
            self.notes += self.engine.notes
            runner.echo("+ docker engine: " + (self.engine.host or "the user's own") +
                        "".join(f"\n  {n}" for n in self.engine.notes))
        if not runner.live or self._missing_image(self.node_image()):
            runner.run(Step([self.docker, "load", "--input", node_tar], env=self.docker_env(),
                            note="the node image the toolchain built (nox -s tools -- --tier kind)", timeout=900))
        from .. import registry

        # The engine's data root outlives a run: load the archive again only
        # when one of its images is missing (a rebuild names the client anew).
        if not runner.live or any(self._missing_image(name) for name in record.get("images") or [registry.image()]):
            runner.run(Step([self.docker, "load", "--input", images_tar], env=self.docker_env(),
                            note="the workload images, the registry's among them, into the engine (the nodes take "
                                 "theirs from there)", timeout=900))
        if not runner.live or self._network_missing():
            runner.run(Step([self.docker, "network", "create", "--driver=bridge", f"--label={LABEL}",
                             f"--opt=com.docker.network.bridge.name={egress.BRIDGE}",
                             "--opt=com.docker.network.bridge.enable_ip_masquerade=false", NETWORK],
                            env=self.docker_env(), note="the tier's own network: no masquerading, its own bridge",
                            timeout=120))
        if runner.live:
            self.sysctls = raise_sysctls(INOTIFY)
            if self.sysctls:
                runner.echo("+ sysctl " + " ".join(f"{k}={INOTIFY[k]}" for k in self.sysctls) +
                            "  # eight nodes' watches; put back after the run")
        step = Step(["install the egress guard:", f"blackhole {egress.POD_RANGE} and {egress.SERVICE_RANGE}",
                     f"DOCKER-USER -i {egress.BRIDGE} ! -o {egress.BRIDGE} -j DROP (counted)"],
                    note="every packet stays on the machine (tests/cluster/egress.py)", in_process=True)
        runner.call(step, self.guard.install)
        self.notes += self.guard.notes

    def _missing_image(self, name: str) -> bool:
        return self.engine.run("image", "inspect", name, check=False).returncode != 0

    def _network_missing(self) -> bool:
        return self.engine.run("network", "inspect", NETWORK, check=False).returncode != 0

    # -- clusters ------------------------------------------------------------

    def config_file(self, target: str) -> Path:
        """create/<target>.yaml (a proof's own cluster: that of the cluster
        directory it bootstraps, ``names.CONFIG_OF``)."""
        return self.root / "create" / f"{names.CONFIG_OF.get(target, target)}.yaml"

    def kubeconfig(self, target: str) -> str:
        return f"{self.work}/{names.cluster_name(target)}.kubeconfig"

    def tier_config_path(self, target: str) -> str:
        return f"{self.work}/kind-{target}.yaml"

    def tier_config(self, target: str, node_image: str) -> str:
        """create/<target>.yaml with what the tier changes (module docstring)."""
        config = yamlload.load(self.config_file(target).read_text(encoding="utf-8")) or {}
        config["name"] = names.cluster_name(target)
        for node in config.get("nodes") or [{"role": "control-plane"}]:
            node["image"] = node_image
        config.setdefault("nodes", [{"role": "control-plane", "image": node_image}])
        networking = config.setdefault("networking", {})
        networking.update(disableDefaultCNI=True, podSubnet=egress.POD_RANGE, serviceSubnet=egress.SERVICE_RANGE)
        if cgroup_v1():
            config.setdefault("kubeadmConfigPatches", []).append(
                "kind: KubeletConfiguration\nfailCgroupV1: false\n")
        return yaml.safe_dump(config, sort_keys=False)

    def create_step(self, target: str) -> Step:
        return Step(
            [self.kind, "create", "cluster", f"--name={names.cluster_name(target)}",
             f"--kubeconfig={self.kubeconfig(target)}", f"--config={self.tier_config_path(target)}"],
            note=f"{target}: kind cluster from create/{names.CONFIG_OF.get(target, target)}.yaml (the tier's node "
                 "image, no default CNI)",
            env=self.docker_env(), timeout=900,
        )

    def create(self, target: str, runner: Recorder) -> Cluster:
        config = self.config_file(target)
        if runner.live and not config.is_file():
            raise FileNotFoundError(
                f"{config.relative_to(self.root)}: no kind config for cluster {target!r}; "
                f"add it (the pages create clusters from create/<name>.yaml)"
            )
        self.setup(runner)
        node_image = self.node_image() if runner.live else "$NODE_IMAGE"
        if runner.live:
            Path(self.tier_config_path(target)).write_text(self.tier_config(target, node_image), encoding="utf-8")
        cluster = Cluster(target, names.cluster_name(target), names.kube_context(target), self.kubeconfig(target))
        with CREATE_LOCK:
            if runner.live and names.cluster_name(target) in self._clusters():
                runner.run(Step([self.kind, "delete", "cluster", f"--name={cluster.name}"], env=self.docker_env(),
                                note=f"{target}: a cluster of that name is left from a killed run", timeout=300))
            runner.run(self.create_step(target))
        return cluster

    def _clusters(self) -> list[str]:
        proc = self.engine.run("ps", "-a", "--filter", "label=io.x-k8s.kind.cluster", "--format",
                               '{{.Label "io.x-k8s.kind.cluster"}}', check=False)
        return sorted(set(proc.stdout.split()))

    def nodes(self, cluster: Cluster) -> list[str]:
        proc = self.engine.run("ps", "--filter", f"label=io.x-k8s.kind.cluster={cluster.name}", "--format",
                               "{{.Names}}", check=False)
        return sorted(proc.stdout.split())

    def wait_ready(self, cluster: Cluster, runner: Recorder) -> None:
        """Per node: the egress routes and the static CNI configuration with
        routes to the other nodes' pod subnets; then every node Ready, and the
        cluster's workload images loaded into the nodes its pods can run on."""
        step = Step([self.kubectl, *kube_args(cluster), "get", "nodes", "-o", "json"],
                    note=f"{cluster.target}: the nodes, their addresses and pod subnets",
                    context=cluster.context, kubeconfig=cluster.kubeconfig, timeout=120)
        nodes = {"$NODE": ("$NODE_IP", "$POD_CIDR")}
        workers = ["$NODE"]
        if not runner.live:
            runner.run(step)
        else:
            # The controller-manager gives each node its pod subnet shortly after it joins.
            deadline = time.monotonic() + READY_BOUND
            while True:
                proc = runner.run(step, check=False)
                try:
                    listing = json.loads(proc.stdout)
                    nodes = node_subnets(listing)
                    workers = schedulable(listing)
                    if len(nodes) == len(self.nodes(cluster)):
                        break
                    problem = f"{len(nodes)} of {len(self.nodes(cluster))} nodes registered"
                except (ValueError, RuntimeError) as error:
                    problem = str(error)
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{cluster.target}: nodes without pod subnets after {READY_BOUND}s: {problem}")
                time.sleep(2)
        for node, (address, subnet) in nodes.items():
            commands = [*egress.node_commands(), ["mkdir", "-p", "/etc/cni/net.d"]]
            commands += [["ip", "route", "replace", other_subnet, "via", other_address]
                         for other, (other_address, other_subnet) in nodes.items() if other != node]
            for command in commands:
                runner.run(Step([self.docker, "exec", node, *command], env=self.docker_env(),
                                note=f"{cluster.target}: {node}: {' '.join(command[:3])}", timeout=60))
            runner.run(Step([self.docker, "exec", "-i", node, "cp", "/dev/stdin", CNI_FILE], env=self.docker_env(),
                            stdin=cni_config(subnet), note=f"{cluster.target}: {node}: static CNI for {subnet}",
                            timeout=60))
        runner.run(Step([self.kubectl, *kube_args(cluster), "wait", "--for=condition=Ready", "nodes", "--all",
                         f"--timeout={READY_BOUND}s"], note=f"{cluster.target}: every node Ready",
                        context=cluster.context, kubeconfig=cluster.kubeconfig, timeout=READY_BOUND + 30))
        self._workload_nodes[cluster.name] = workers
        wanted = self.node_images(cluster.target) if runner.live else ["$IMAGES"]
        runner.run(Step([self.kind, "load", "docker-image", *wanted, f"--name={cluster.name}",
                         f"--nodes={','.join(workers)}"],
                        env=self.docker_env(), note=f"{cluster.target}: its workload images, built from source, into "
                                                    "the nodes its pods can run on", timeout=900))

    # -- the Flux Operator -------------------------------------------------------

    def by_digest(self) -> dict:
        """From the kind-images record: ``images`` (``name:tag`` -> the digest
        the Flux Operator asks for it by) and ``instead`` (tags holding
        another version, with why)."""
        from toolchain import cache, pins

        record = cache.record(pins.tools(self.root)["kind-images"]) or {}
        return record.get("by_digest") or {}

    def operator_problem(self) -> str | None:
        return None  # its image and its controllers' are in kind-images, which the whole tier needs

    def run_operator(self, cluster: Cluster, runner: Recorder, binary: str, data: str) -> None:
        """The operator runs from its image (built here: its program and, in
        ``/data``, the Flux manifests it installs from), and the controllers it
        installs run as pods. It asks for them by tag and digest, as its data
        lists the published images; images built from source cannot have
        those digests, so each node's containerd gets the built image under
        the digest name too (``ctr images tag``), which a pulled image could
        never need. The report says so."""
        wanted = self.by_digest() if runner.live else {"images": {"$IMAGE:$TAG": "$DIGEST"}}
        if not wanted.get("images"):
            raise RuntimeError("the kind-images record lists no Flux controllers of the Flux Operator: rebuild it "
                               "(`nox -s tools -- --tier kind`)")
        for name, digest in sorted(wanted.get("images", {}).items()):
            alias = f"{name.rsplit(':', 1)[0]}@{digest}"
            for node in (self.workload_nodes(cluster) if runner.live else ["$NODE"]):
                runner.run(Step([self.docker, "exec", node, "ctr", "--namespace=k8s.io", "images", "tag", "--force",
                                 name, alias], env=self.docker_env(), timeout=60,
                                note=f"{cluster.target}: {node}: the Flux Operator asks for {name}@{digest[:19]}...; "
                                     "the tier's build (another digest) answers to that name"))
        if runner.live:
            note = (f"{cluster.target}: the Flux Operator pins its controllers by digest; the tier names its "
                    f"builds by those digests ({', '.join(sorted(wanted.get('images', {})))})")
            extra = wanted.get("instead") or []
            self.notes.append(note + ("; " + "; ".join(extra) if extra else ""))
        runner.run(Step([self.kubectl, *kube_args(cluster), "--namespace", "flux-system", "rollout", "status",
                         "deployment/flux-operator", "--timeout=300s"],
                        note=f"{cluster.target}: the Flux Operator's pod runs (its image, built here)",
                        context=cluster.context, kubeconfig=cluster.kubeconfig, timeout=330))

    def workload_containers(self, cluster: Cluster, kept_namespaces) -> list[str]:
        out = []
        for node in self.nodes(cluster):
            proc = self.engine.run("exec", node, "crictl", "ps", "-o", "json", check=False)
            for container in (json.loads(proc.stdout or "{}").get("containers") or []) if proc.returncode == 0 else []:
                labels = container.get("labels") or {}
                namespace = labels.get("io.kubernetes.pod.namespace", "")
                if namespace not in kept_namespaces:
                    out.append(f"{node}: {namespace}/{labels.get('io.kubernetes.pod.name')} "
                               f"({labels.get('io.kubernetes.container.name')})")
        return out

    def delete(self, cluster: Cluster, runner: Recorder) -> None:
        runner.run(Step([self.kind, "delete", "cluster", f"--name={cluster.name}",
                         f"--kubeconfig={cluster.kubeconfig}"], env=self.docker_env(),
                        note=f"{cluster.target}: delete the kind cluster", timeout=300))

    # -- registry and host ------------------------------------------------------

    def start_registry(self, runner: Recorder):
        from .. import registry

        self.setup(runner)
        gateway = self.host_address(runner)[1]
        made = registry.start(self.docker, runner, gateway, NETWORK, self.docker_env())
        self.registry_port = made.host_port
        return made

    def stop_registry(self, runner: Recorder) -> None:
        from .. import registry

        registry.stop(self.docker, runner, self.docker_env())

    def gateway_step(self) -> Step:
        return Step(
            [self.docker, "network", "inspect", NETWORK, "--format", "{{range .IPAM.Config}}{{.Gateway}} {{end}}"],
            note="the host's address on the tier's network: the git server and the registry listen there",
            placeholder=GATEWAY, env=self.docker_env(), timeout=60,
        )

    def host_address(self, runner: Recorder) -> tuple[str, str]:
        if self.gateway:
            return self.gateway, self.gateway
        self.setup(runner)
        if platform.system() != "Linux":
            # Docker Desktop: containers reach the host's loopback by this name.
            return "127.0.0.1", "host.docker.internal"
        out = runner.run(self.gateway_step()).stdout
        if not runner.live:
            return GATEWAY, GATEWAY
        self.gateway = pick_ipv4(out)
        return self.gateway, self.gateway

    def cleanup(self, runner: Recorder) -> None:
        """After the clusters: any gwp- cluster of the run left, the network,
        the egress guard (its counter checked first), the engine if the tier
        started it."""
        if self.engine is None:
            return
        problems = []
        for name in self._clusters():
            if name.startswith(names.PREFIX):
                runner.run(Step([self.kind, "delete", "cluster", f"--name={name}"], env=self.docker_env(),
                                note=f"{name}: left by a failed create", timeout=300), check=False)
        runner.run(Step([self.docker, "network", "rm", NETWORK], env=self.docker_env(),
                        note="remove the tier's network", timeout=120), check=False)
        self.egress_result = self.egress_report()
        leaked = self.guard.check()
        if leaked:
            problems.append(leaked)
        self.guard.remove()
        restore_sysctls(getattr(self, "sysctls", {}))
        if not getattr(self, "keep_engine", False):
            self.engine.stop()
        if problems:
            raise AssertionError("; ".join(problems))

    egress_result = ""

    def egress_report(self) -> str:
        if not self.guard.rule:
            return "; ".join(self.guard.notes) or "egress guard not installed"
        return (f"egress guard: {self.guard.dropped()} packet(s) from the tier's network headed off the machine "
                "(each would have been dropped, and fails the run)")


def raise_sysctls(wanted: dict[str, int]) -> dict[str, str]:
    """Raise each kernel setting below its wanted value (root only); returns
    the old values of those it raised."""
    old = {}
    for key, value in wanted.items():
        path = Path("/proc/sys") / key.replace(".", "/")
        try:
            current = path.read_text().strip()
            if int(current) < value:
                path.write_text(str(value))
                old[key] = current
        except (OSError, ValueError):
            continue
    return old


def restore_sysctls(old: dict[str, str]) -> None:
    for key, value in old.items():
        with contextlib.suppress(OSError):
            (Path("/proc/sys") / key.replace(".", "/")).write_text(value)


def node_subnets(listing: dict) -> dict[str, tuple[str, str]]:
    """node -> (its internal address, its pod subnet)."""
    out = {}
    for item in listing.get("items", []):
        address = next((a["address"] for a in item.get("status", {}).get("addresses", [])
                        if a.get("type") == "InternalIP"), None)
        subnet = item.get("spec", {}).get("podCIDR")
        if not address or not subnet:
            raise RuntimeError(f"node {item['metadata']['name']} has no InternalIP or podCIDR yet: {item.get('spec')}")
        out[item["metadata"]["name"]] = (address, subnet)
    return out


def schedulable(listing: dict) -> list[str]:
    """The nodes without a taint that keeps pods off them for good
    (NoSchedule, NoExecute): where the workloads' pods can run. The taints
    Kubernetes sets for a node's passing conditions (``node.kubernetes.io/``:
    not ready yet, under pressure) do not count; every node, if all are
    tainted."""
    items = listing.get("items", [])
    free = sorted(item["metadata"]["name"] for item in items
                  if not any(t.get("effect") in ("NoSchedule", "NoExecute")
                             and not t.get("key", "").startswith("node.kubernetes.io/")
                             for t in (item.get("spec") or {}).get("taints") or []))
    return free or sorted(item["metadata"]["name"] for item in items)


def cni_config(subnet: str) -> str:
    """A node's CNI configuration: a point-to-point link per pod, addresses
    from the node's pod subnet, masquerading to anything outside it (the
    host's address on the network; nothing else is routed), host ports."""
    return json.dumps({
        "cniVersion": "0.4.0",
        "name": "gwp-static",
        "plugins": [
            {"type": "ptp", "ipMasq": True, "mtu": 1500,
             "ipam": {"type": "host-local", "dataDir": "/run/cni-ipam-state",
                      "routes": [{"dst": "0.0.0.0/0"}], "ranges": [[{"subnet": subnet}]]}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }, indent=2) + "\n"


def pick_ipv4(gateways: str) -> str:
    """The IPv4 gateway among those ``docker network inspect`` printed."""
    for word in gateways.split():
        with contextlib.suppress(ValueError):
            if ipaddress.ip_address(word).version == 4:
                return word
    raise RuntimeError(
        f"the docker network {NETWORK!r} has no IPv4 gateway (got {gateways.strip()!r}); "
        "kind clusters could not reach the git server"
    )
