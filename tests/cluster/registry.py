"""A local OCI registry (CNCF Distribution) for the platform releases and the
charts the tree installs, over plain HTTP.

- kind: the ``registry`` image (built from source by the toolchain) as a
  container on the tier's network, its port published on the host's address
  on that network (the gateway): the host pushes and the pods pull at that
  one address, as the walkthrough's single ``PLATFORM_OCI_URL`` needs.
- kwok: the same registry, built from source, as a host process on
  127.0.0.1: the Flux controllers run on the host too, so both sides use one
  address.
"""

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
    """The registry image of the version versions.yaml pins for the registry
    (``tools.registry``): the kind tier runs the image, kwok the binary."""
    from toolchain import pins

    return "registry:" + pins.tools(PROJECT_ROOT)["registry"].version.lstrip("v")

LABEL = "org.gitops-whitepaper.harness=cluster-tier"
REPOSITORY = "platform"


@dataclass(frozen=True)
class Registry:
    host_port: str
    # The address clusters (and, on kind, the host too) use: host:port.
    in_cluster: str

    @property
    def push_host(self) -> str:
        """Where the host pushes: the address the clusters use as well."""
        return self.in_cluster

    @property
    def host_address(self) -> str:
        return f"127.0.0.1:{self.host_port}"

    @property
    def mirror_url(self) -> str:
        """The registry as clusters see it: a chart mirror's cluster variable."""
        return f"oci://{self.in_cluster}"

    @property
    def push_url(self) -> str:
        """Where the host pushes platform releases."""
        return f"oci://{self.push_host}/{REPOSITORY}"

    @property
    def cluster_url(self) -> str:
        """What the clusters' OCIRepository objects use (``platform_oci_url``)."""
        return f"oci://{self.in_cluster}/{REPOSITORY}"


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def start_step(docker: str, address: str, host_port: str, network: str, env: dict | None = None) -> Step:
    return Step(
        [
            docker, "run", "--detach", "--restart=no",
            f"--name={names.REGISTRY_CONTAINER}",
            f"--network={network}",
            f"--label={LABEL}",
            f"--publish={address}:{host_port}:{names.REGISTRY_PORT_IN_NETWORK}",
            image(),
        ],
        note="local OCI registry on the tier's network, published on the host's address there",
        env=dict(env or {}),
        timeout=300,
    )


def stop_step(docker: str, env: dict | None = None) -> Step:
    return Step([docker, "rm", "--force", "--volumes", names.REGISTRY_CONTAINER], note="remove the registry",
                env=dict(env or {}), timeout=120)


def start(docker: str, runner: Recorder, address: str, network: str, env: dict | None = None) -> Registry:
    port = str(free_port(address)) if runner.live else REGISTRY_PORT
    runner.run(start_step(docker, address, port, network, env))
    made = Registry(port, in_cluster=f"{address}:{port}")
    if runner.live:
        from . import processes

        processes.wait_port(int(port), 30, "the registry", host=address)
    return made


def stop(docker: str, runner: Recorder, env: dict | None = None) -> None:
    runner.run(stop_step(docker, env), check=False)


# -- the registry as a host process (kwok provider) ---------------------------

CONFIG = """version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""


def host_start(binary: str, work: str, runner: Recorder):
    """Start the registry binary on a free loopback port; returns
    (Registry, HostProcess or None on a plan)."""
    from pathlib import Path

    from . import processes

    port = str(free_port()) if runner.live else REGISTRY_PORT
    folder = Path(work) / "registry"
    config = folder / "config.yml"
    step = Step([binary, "serve", str(config)], note="local OCI registry (CNCF Distribution) on 127.0.0.1",
                env={"OTEL_TRACES_EXPORTER": "none"})
    made = Registry(port, in_cluster=f"127.0.0.1:{port}")
    if not runner.live:
        runner.run(step)
        return made, None
    folder.mkdir(parents=True, exist_ok=True)
    config.write_text(CONFIG.format(root=folder / "data", port=port), encoding="utf-8")
    process = runner.start(step, folder / "registry.log")
    processes.wait_port(int(port), 30, "the registry", process)
    return made, process
