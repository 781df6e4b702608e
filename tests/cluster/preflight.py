"""Can the cluster tier run here? Finds the tools a provider needs (and, for
kind, checks that a Docker engine answers); when something is missing, says
exactly what and what to do, so the tier is reported as skipped with that
reason (never a silent pass)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field

from harness.model import PROJECT_ROOT

# Tools the tier runs with each provider, in the order a reader would install them.
REQUIRED = ("docker", "kind", "kubectl", "flux", "helm", "cosign")
REQUIRED_BY_PROVIDER = {
    "kind": REQUIRED,
    "kwok": ("kwokctl", "kwok", "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl",
             "flux", "helm", "cosign", "registry", "source-controller", "kustomize-controller", "helm-controller",
             "notification-controller"),
}

_HINTS = {
    "docker": "install Docker (Docker Desktop, or docker-ce and its engine)",
    "kind": "run `nox -s tools` (installs the pinned kind into .tools/bin)",
    "kubectl": "install kubectl (https://kubernetes.io/docs/tasks/tools/)",
    "flux": "run `nox -s tools` (builds the flux CLI of versions.yaml flux.version from source)",
}


def find_tool(name: str) -> str | None:
    """The path of a CLI tool: the harness's own lookup (.tools/bin first, then
    PATH) when it is available, else the same rule here."""
    try:
        from harness import tools  # the shared lookup; pins come from versions.yaml
    except ImportError:
        tools = None
    if tools is not None and hasattr(tools, "find"):
        found = tools.find(name)
        return str(found) if found else None
    local = PROJECT_ROOT / ".tools" / "bin" / name
    if local.is_file():
        return str(local)
    return shutil.which(name)


def _missing_tool_reason(name: str) -> str:
    try:
        from harness import tools
    except ImportError:
        tools = None
    if tools is not None and hasattr(tools, "missing_reason"):
        reason = tools.missing_reason(name)
        if reason:
            return str(reason)
    return f"{name} not found on PATH or in .tools/bin: {_HINTS.get(name, 'run `nox -s tools -- --tier kwok`')}"


def docker_engine_problem(docker: str, timeout: float = 20) -> str | None:
    """None when ``docker info`` reaches an engine; otherwise why not."""
    try:
        proc = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"Docker engine not reachable ({err}): start Docker and retry"
    if proc.returncode == 0 and proc.stdout.strip():
        return None
    detail = (proc.stderr or proc.stdout).strip().splitlines()
    first = detail[-1] if detail else f"exit {proc.returncode}"
    return f"Docker engine not reachable (`docker info`: {first}): start Docker and retry"


@dataclass
class Preflight:
    """What was found. ``reasons`` is empty when the tier can run."""

    tools: dict[str, str] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.reasons

    def skip_reason(self) -> str:
        return "cluster tier cannot run here: " + "; ".join(self.reasons)

    def tool(self, name: str) -> str:
        """The path to run ``name`` with; the bare name when it was not found
        (so a printed plan still reads naturally)."""
        return self.tools.get(name, name)


def default_provider() -> str:
    """kind where a Docker engine answers, kwok everywhere else."""
    docker = shutil.which("docker")
    if docker and docker_engine_problem(docker, timeout=10) is None:
        return "kind"
    return "kwok"


def check(check_engine: bool = True, provider: str = "kind") -> Preflight:
    """Look for every tool ``provider`` needs and, for kind, for Docker's engine."""
    result = Preflight()
    for name in REQUIRED_BY_PROVIDER.get(provider, REQUIRED):
        path = find_tool(name)
        if path:
            result.tools[name] = path
        else:
            result.reasons.append(_missing_tool_reason(name))
    # The private-fork proof's git server: Debian's openssh-server and git-shell.
    from . import sshgit

    result.reasons.extend(sshgit.missing_tools())
    if check_engine and provider == "kind" and "docker" in result.tools:
        import docker_engine

        problem = docker_engine_problem(result.tools["docker"])
        if problem and docker_engine.can_start_own():
            problem = None  # the tier starts its own dockerd
        if problem:
            result.reasons.insert(0, problem)
    if provider == "kind":
        result.reasons += kind_images_missing()
    return result


def kind_images_missing() -> list[str]:
    """The kind tier's node and workload images must be built (they are never pulled)."""
    from toolchain import cache, pins

    try:
        tools = pins.tools(PROJECT_ROOT)
    except Exception as error:  # noqa: BLE001 - reported as the reason the tier cannot run
        return [f"the kind tier's images cannot be resolved: {error}"]
    hint = {"kind-images": f" with {pins.PREBUILT_ENV} naming the folder of cert-manager's prebuilt programs "
                           "(the same for this run: the images are cached under a key over them)"}
    return [f"{name} {tools[name].version} is not built: run `nox -s tools -- --tier kind`{hint.get(name, '')}"
            for name in ("kind-node", "kind-images") if cache.record(tools[name]) is None]
