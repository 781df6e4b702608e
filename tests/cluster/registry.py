"""A local OCI registry for the platform release flows: the ``registry``
container on the kind network, so clusters pull from ``gwp-registry:5000``
while the host pushes to ``localhost:<port>`` (plain HTTP; flux treats
localhost registries as insecure on its own)."""

from __future__ import annotations

import functools
import socket
from dataclasses import dataclass

import yaml

from harness.model import PROJECT_ROOT

from . import names
from .plan import REGISTRY_PORT, Step
from .runner import Recorder



@functools.lru_cache(maxsize=None)
def image() -> str:
    """The registry image versions.yaml pins (``images.registry``)."""
    with open(PROJECT_ROOT / "versions.yaml", encoding="utf-8") as handle:
        return yaml.safe_load(handle)["images"]["registry"]

LABEL = "org.gitops-whitepaper.harness=cluster-tier"
REPOSITORY = "platform"


@dataclass(frozen=True)
class Registry:
    host_port: str

    @property
    def push_url(self) -> str:
        """Where the host pushes platform releases."""
        return f"oci://localhost:{self.host_port}/{REPOSITORY}"

    @property
    def cluster_url(self) -> str:
        """What the clusters' OCIRepository objects use (``platform_oci_url``)."""
        return f"oci://{names.REGISTRY_CONTAINER}:{names.REGISTRY_PORT_IN_NETWORK}/{REPOSITORY}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_step(docker: str, host_port: str) -> Step:
    return Step(
        [
            docker, "run", "--detach", "--restart=no",
            f"--name={names.REGISTRY_CONTAINER}",
            f"--network={names.KIND_NETWORK}",
            f"--label={LABEL}",
            f"--publish=127.0.0.1:{host_port}:{names.REGISTRY_PORT_IN_NETWORK}",
            image(),
        ],
        note="local OCI registry on the kind network",
        timeout=300,
    )


def stop_step(docker: str) -> Step:
    return Step([docker, "rm", "--force", names.REGISTRY_CONTAINER], note="remove the registry", timeout=120)


def start(docker: str, runner: Recorder) -> Registry:
    port = str(free_port()) if runner.live else REGISTRY_PORT
    runner.run(start_step(docker, port))
    return Registry(port)


def stop(docker: str, runner: Recorder) -> None:
    runner.run(stop_step(docker), check=False)
