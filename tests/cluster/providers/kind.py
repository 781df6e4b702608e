"""kind clusters made from the tree's own configs (``create/<target>.yaml``),
through pytest-kind's ``KindCluster`` with the pinned kind binary (never one
it downloads) and a kubeconfig in the harness's temporary directory."""

from __future__ import annotations

import contextlib
import ipaddress
import platform
from pathlib import Path

from .. import names
from ..plan import GATEWAY, Step
from ..runner import Recorder
from . import Cluster, Provider


class KindProvider(Provider):
    name = "kind"

    def __init__(self, tools: dict[str, str], work: str, root: str):
        self.kind = tools.get("kind", "kind")
        self.kubectl = tools.get("kubectl", "kubectl")
        self.docker = tools.get("docker", "docker")
        self.work = work
        self.root = Path(root)

    def config_file(self, target: str) -> Path:
        return self.root / "create" / f"{target}.yaml"

    def kubeconfig(self, target: str) -> str:
        return f"{self.work}/{names.cluster_name(target)}.kubeconfig"

    def create_step(self, target: str) -> Step:
        """Exactly what ``KindCluster.create(config_file=...)`` runs."""
        return Step(
            [
                self.kind, "create", "cluster",
                f"--name={names.cluster_name(target)}",
                f"--kubeconfig={self.kubeconfig(target)}",
                "--config", str(self.config_file(target)),
            ],
            note=f"{target}: kind cluster from create/{target}.yaml",
            timeout=600,
        )

    def create(self, target: str, runner: Recorder) -> Cluster:
        config = self.config_file(target)
        if runner.live and not config.is_file():
            raise FileNotFoundError(
                f"{config.relative_to(self.root)}: no kind config for cluster {target!r}; "
                f"add it (the pages create clusters from create/<name>.yaml)"
            )
        cluster = Cluster(target, names.cluster_name(target), names.kube_context(target), self.kubeconfig(target))
        step = self.create_step(target)

        def make() -> None:
            from pytest_kind import KindCluster

            # KindCluster keeps a scratch folder under the current directory:
            # point it at the temporary directory, never the tree.
            with contextlib.chdir(self.work):
                kc = KindCluster(
                    cluster.name,
                    kubeconfig=Path(cluster.kubeconfig),
                    kind_path=Path(self.kind),
                    kubectl_path=Path(self.kubectl),
                )
                if self._exists(cluster.name):
                    # Kept from an earlier --keep-cluster run: reuse it, but
                    # with a fresh kubeconfig (KindCluster would not write one).
                    runner.run(Step([self.kind, "export", "kubeconfig", f"--name={cluster.name}",
                                     f"--kubeconfig={cluster.kubeconfig}"], timeout=60))
                kc.create(config_file=config)

        runner.call(step, make)
        return cluster

    def _exists(self, name: str) -> bool:
        import subprocess

        out = subprocess.run([self.kind, "get", "clusters"], capture_output=True, text=True, timeout=60)
        return name in out.stdout.split()

    def delete(self, cluster: Cluster, runner: Recorder) -> None:
        runner.run(
            Step(
                [self.kind, "delete", "cluster", f"--name={cluster.name}", f"--kubeconfig={cluster.kubeconfig}"],
                note=f"{cluster.target}: delete the kind cluster",
                timeout=300,
            )
        )

    def start_registry(self, runner: Recorder):
        from .. import registry

        return registry.start(self.docker, runner)

    def stop_registry(self, runner: Recorder) -> None:
        from .. import registry

        registry.stop(self.docker, runner)

    def gateway_step(self) -> Step:
        return Step(
            [self.docker, "network", "inspect", names.KIND_NETWORK, "--format",
             "{{range .IPAM.Config}}{{.Gateway}} {{end}}"],
            note="the host's address on the kind network: the git server binds it",
            placeholder=GATEWAY,
            timeout=60,
        )

    def host_address(self, runner: Recorder) -> tuple[str, str]:
        if platform.system() != "Linux":
            # Docker Desktop: containers reach the host's loopback by this name.
            return "127.0.0.1", "host.docker.internal"
        out = runner.run(self.gateway_step()).stdout
        if not runner.live:
            return GATEWAY, GATEWAY
        return (pick_ipv4(out),) * 2


def pick_ipv4(gateways: str) -> str:
    """The IPv4 gateway among those ``docker network inspect`` printed."""
    for word in gateways.split():
        with contextlib.suppress(ValueError):
            if ipaddress.ip_address(word).version == 4:
                return word
    raise RuntimeError(
        f"the docker network {names.KIND_NETWORK!r} has no IPv4 gateway (got {gateways.strip()!r}); "
        "kind clusters could not reach the git server"
    )
