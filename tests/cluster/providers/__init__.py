"""How a cluster is provided: one small interface, so a second way of getting
a cluster (an existing cloud cluster, k3d, ...) can be added here without
touching the tests.

A provider creates and deletes clusters and says how a cluster reaches
services on the test host. Installing Flux and wiring the endpoints are the
same on every provider (``flux bootstrap git`` and one ConfigMap) and live in
``Provider``; a provider overrides them only if it must.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .. import names
from ..plan import Step
from ..runner import Recorder

FLUX_NAMESPACE = "flux-system"
# One flux bootstrap per branch at a time: each pushes to its branch, and
# clusters made side by side would race for it; one that loses anyway
# bootstraps again (rerunning bootstrap is safe). After its last push, flux
# bootstrap waits until its GitRepository holds exactly the commit it pushed
# (then its Kustomization): a commit another cluster pushes on top before
# that source fetched makes it wait out its whole timeout (seen: staging
# waiting for its sync commit while its source held production's). So a
# bootstrap's turn lasts until it reports its GitRepository reconciled
# (``TURN_ENDS``; its Kustomization attempts that revision at once, and its
# source fetches again only after its interval); where a provider cannot
# read bootstrap's progress, until it has finished. Letting go after the
# component push made three clusters' pushes collide until flux bootstrap
# gave up.
_BOOTSTRAP_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_LOCK = threading.Lock()
BOOTSTRAP_ATTEMPTS = 3
# What flux bootstrap prints once its source holds its commit, and when it is done.
TURN_ENDS = ("GitRepository reconciled successfully", "all components are healthy")


def bootstrap_lock(branch: str) -> threading.Lock:
    """The lock bootstraps that push to ``branch`` take."""
    with _LOCKS_LOCK:
        return _BOOTSTRAP_LOCKS.setdefault(branch, threading.Lock())


def pushed_concurrently(output: str) -> bool:
    """Whether bootstrap failed because another push moved the branch first."""
    return "non-fast-forward" in output
CLUSTER_VARS = "cluster-vars"


@dataclass(frozen=True)
class Cluster:
    """A cluster the harness created."""

    target: str  # the tree's name for it: development, staging, production, sandbox
    name: str  # the provider's name for it: gwp-staging
    context: str  # the kube context, registered with the guard
    kubeconfig: str  # a file in the harness's temporary directory


@dataclass(frozen=True)
class Endpoints:
    """What the cluster variables point at (CONTRIBUTING.md, Cluster variables)."""

    git_url: str  # http://<gateway>:<port>/gitops-whitepaper.git
    oci_url: str  # oci://gwp-registry:5000/platform, as seen from inside the cluster
    oci_insecure: bool = True  # the local registry speaks plain HTTP
    # Upstream chart registry -> the local mirror serving its charts under the
    # same paths (CONTRIBUTING.md, Cluster variables): {"quay.io": "oci://127.0.0.1:5001"}
    chart_mirrors: dict = None  # type: ignore[assignment]
    # The public key platform releases are signed with (a file), for the
    # Secret flux-system/platform-release-key that staging and production verify with.
    release_key: str | None = None


def kube_args(cluster: Cluster) -> list[str]:
    """The flags that pin a kubectl/flux command to the harness's cluster."""
    return [f"--kubeconfig={cluster.kubeconfig}", f"--context={cluster.context}"]


class Provider:
    """The interface. ``create``/``delete``/``host_address`` are the provider's
    own; the rest has a default every provider shares."""

    name = "abstract"
    # What this provider simulates rather than runs, for the report ('' = nothing).
    simulated = ""
    # Whether pods really run (containers, probes, Services carrying traffic).
    runs_pods = False
    # Whether the proofs marked ``pytest.mark.ahead`` run in the background,
    # each from the stage it must follow (``TierEnvironment.ahead_proof``):
    # where the machine holds the proofs' own clusters beside the run's (kwok,
    # kind on the project's machine). Elsewhere every proof runs in the
    # foreground, in the test order.
    proofs_ahead = False

    def create(self, target: str, runner: Recorder) -> Cluster:
        raise NotImplementedError

    def delete(self, cluster: Cluster, runner: Recorder) -> None:
        raise NotImplementedError

    def wait_ready(self, cluster: Cluster, runner: Recorder) -> None:
        """After ``create`` and the guard's registration: wait until the
        cluster takes work (nothing to do where ``create`` waits itself)."""

    def host_address(self, runner: Recorder) -> tuple[str, str]:
        """(address to bind the git server on, address clusters use to reach it)."""
        raise NotImplementedError

    def wire_endpoints(self, cluster: Cluster, endpoints: Endpoints, runner: Recorder, kubectl: str) -> None:
        """Create the ``cluster-vars`` ConfigMap before Flux reconciles anything,
        so the root Kustomization substitutes the harness's endpoints."""
        runner.run(
            Step(
                [kubectl, *kube_args(cluster), "apply", "--server-side", "-f", "-"],
                note=f"{cluster.target}: cluster variables (ConfigMap {FLUX_NAMESPACE}/{CLUSTER_VARS})",
                stdin=cluster_vars_manifest(cluster, endpoints),
                context=cluster.context,
                kubeconfig=cluster.kubeconfig,
                timeout=120,
            )
        )

    def install_flux(self, cluster: Cluster, endpoints: Endpoints, runner: Recorder, flux: str, path: str | None = None,
                     branch: str = names.DEFAULT_BRANCH, watch=None) -> None:
        """``flux bootstrap git`` against the harness's git server: installs
        the pinned Flux (the CLI's own embedded manifests), pushes the sync
        manifests to the snapshot, and waits for the first reconciliation.
        ``watch`` (``status.FluxWatch.check``) is called while bootstrap
        waits: a Flux object that fails for good stops it at once."""
        from ..runner import StepFailed

        with bootstrap_lock(branch):
            self._bootstrap_with_retries(cluster, endpoints, runner, flux, path, branch, StepFailed, watch)

    def install_flux_with(self, cluster: Cluster, runner: Recorder, step: Step) -> None:
        """Run ``step``, a command that installs Flux its own way (the pages'
        bootstrap script over SSH), where ``install_flux`` runs the harness's
        ``flux bootstrap``: a provider whose controllers do not run in pods
        (kwok) starts them while the step runs."""
        runner.run(step)

    def _bootstrap_with_retries(self, cluster, endpoints, runner, flux, path, branch, StepFailed, watch=None) -> None:
        for attempt in range(1, BOOTSTRAP_ATTEMPTS + 1):
            try:
                runner.run(self.bootstrap_step(cluster, endpoints, flux, path, branch), while_waiting=watch)
                return
            except StepFailed as failed:
                if attempt == BOOTSTRAP_ATTEMPTS or not pushed_concurrently(str(failed)):
                    raise

    def bootstrap_step(self, cluster: Cluster, endpoints: Endpoints, flux: str, path: str | None = None,
                       branch: str = names.DEFAULT_BRANCH) -> Step:
        return Step(
            [
                flux, "bootstrap", "git", *kube_args(cluster),
                f"--url={endpoints.git_url}",
                "--allow-insecure-http=true",
                "--token-auth=true",
                "--username=git",
                f"--password={names.GIT_PASSWORD}",
                f"--branch={branch}",
                f"--path={path or f'clusters/{cluster.target}'}",
                "--author-name=docs-test harness",
                "--silent",
                "--timeout=10m",
            ],
            note=f"{cluster.target}: install Flux and tie the cluster to its directory",
            context=cluster.context,
            kubeconfig=cluster.kubeconfig,
            timeout=900,
        )

    def operator_problem(self) -> str | None:
        """Why the Flux Operator cannot run on this provider's clusters (None:
        it can). A provider runs it its own way (kind from its image, kwok
        as a host process); one that does not say how cannot."""
        return f"the {self.name} provider does not run the Flux Operator"

    def run_operator(self, cluster: Cluster, runner: Recorder, binary: str, data: str) -> None:
        """Run the Flux Operator for its Deployment (``install.yaml`` applied
        already), and keep Flux's controllers running once the operator has
        installed them."""
        raise NotImplementedError(self.operator_problem())

    @contextlib.contextmanager
    def receiver_url(self, cluster: Cluster, runner: Recorder):
        """Where a webhook delivery reaches the cluster's notification-
        controller, as ``http://HOST:PORT``, for the duration of the block.
        By default through the Service ``webhook-receiver`` Flux installs,
        with ``kubectl port-forward`` (a pod must serve it)."""
        step = Step([getattr(self, "kubectl", "kubectl"), *kube_args(cluster), "--namespace", FLUX_NAMESPACE, "port-forward",
                     "service/webhook-receiver", ":80"],
                    note=f"{cluster.target}: reach the webhook receiver through its Service", context=cluster.context,
                    kubeconfig=cluster.kubeconfig, timeout=60)
        if not runner.live:
            runner.call(step, lambda: None)
            yield "http://127.0.0.1:$RECEIVER_PORT"
            return
        log = Path(getattr(self, "work", None) or tempfile.mkdtemp(prefix=f"{names.PREFIX}work-"))
        forward = runner.start(step, log / f"port-forward-{cluster.target}.log")
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                found = re.search(r"Forwarding from 127\.0\.0\.1:(\d+)", forward.tail(5))
                if found:
                    yield f"http://127.0.0.1:{found.group(1)}"
                    return
                if not forward.alive():
                    break
                time.sleep(0.5)
            raise RuntimeError(f"{cluster.target}: kubectl port-forward to service/webhook-receiver did not start:\n"
                               f"{forward.tail(20)}")
        finally:
            forward.stop()

    def workload_containers(self, cluster: Cluster, kept_namespaces) -> list[str]:
        """Containers still running on the cluster's nodes for pods outside
        ``kept_namespaces`` (empty where no container runs, as on kwok)."""
        return []

    def controller_logs(self, cluster: Cluster) -> dict:
        """Controller name -> log file on the host, for providers whose
        controllers do not run in pods (empty: read them from the pods)."""
        return {}

    def cleanup(self, runner: Recorder) -> None:
        """After every cluster was deleted: stop anything of the run that is
        still running (a cluster whose creation failed halfway)."""

    def start_registry(self, runner: Recorder):
        """The local OCI registry for platform releases and charts."""
        raise NotImplementedError

    def stop_registry(self, runner: Recorder) -> None:
        raise NotImplementedError


def cluster_vars_manifest(cluster: Cluster, endpoints: Endpoints) -> str:
    """The namespace and ConfigMap, as YAML for ``kubectl apply -f -``."""
    return f"""apiVersion: v1
kind: Namespace
metadata:
  name: {FLUX_NAMESPACE}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {CLUSTER_VARS}
  namespace: {FLUX_NAMESPACE}
data:
  cluster_name: {cluster.target}
  platform_git_url: {endpoints.git_url}
  platform_oci_url: {endpoints.oci_url}
  platform_oci_insecure: "{str(endpoints.oci_insecure).lower()}"
""" + "".join(f"  {mirror_variable(host)}: {url}\n" for host, url in sorted((endpoints.chart_mirrors or {}).items())) \
        + ('  oci_mirror_insecure: "true"\n' if endpoints.chart_mirrors else "") \
        + release_key_secret(endpoints.release_key)


def release_key_secret(path: str | None) -> str:
    """The Secret the platform sources verify releases with, as
    snippets/cluster-vars.sh writes it from PLATFORM_RELEASE_KEY."""
    if not path:
        return ""
    import base64
    import os

    data = base64.b64encode(open(path, "rb").read()).decode() if os.path.exists(path) else "<cosign.pub>"
    return f"""---
apiVersion: v1
kind: Secret
metadata:
  name: platform-release-key
  namespace: {FLUX_NAMESPACE}
data:
  cosign.pub: {data}
"""


def mirror_variable(registry_host: str) -> str:
    """The cluster variable of a chart registry's mirror: quay.io -> oci_mirror_quay_io."""
    return "oci_mirror_" + "".join(c if c.isalnum() else "_" for c in registry_host)


def get(name: str, tools: dict[str, str], work: str, root: str) -> Provider:
    """The provider called ``name`` (``--cluster NAME``). ``tools`` maps a
    tool to its path, ``work`` is the harness's temporary directory, ``root``
    the tree under test."""
    from .kind import KindProvider
    from .kwok import KwokProvider

    known = {KindProvider.name: KindProvider, KwokProvider.name: KwokProvider}
    if name not in known:
        raise ValueError(f"unknown cluster provider {name!r}; known: {', '.join(sorted(known))}")
    return known[name](tools, work, root)
