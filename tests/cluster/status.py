"""Reading Flux objects' readiness, and waiting for it within a bound."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from .plan import Step
from .providers import Cluster, kube_args
from .runner import Recorder

KINDS = "kustomizations.kustomize.toolkit.fluxcd.io,helmreleases.helm.toolkit.fluxcd.io"


@dataclass(frozen=True)
class ObjectState:
    kind: str
    namespace: str
    name: str
    ready: bool
    message: str

    def __str__(self) -> str:
        state = "Ready" if self.ready else "not Ready"
        return f"{self.kind} {self.namespace}/{self.name}: {state}{': ' + self.message if self.message else ''}"


def states(listing: dict) -> list[ObjectState]:
    """From ``kubectl get ... -o json``, each object's Ready condition."""
    out = []
    for item in listing.get("items", []):
        meta = item.get("metadata", {})
        ready = next((c for c in item.get("status", {}).get("conditions", []) if c.get("type") == "Ready"), {})
        out.append(
            ObjectState(
                item.get("kind", "?"),
                meta.get("namespace", ""),
                meta.get("name", "?"),
                ready.get("status") == "True",
                ready.get("message", "no Ready condition yet"),
            )
        )
    return out


def list_step(cluster: Cluster, kubectl: str, kinds: str = KINDS) -> Step:
    return Step([kubectl, *kube_args(cluster), "get", kinds, "--all-namespaces", "-o", "json"],
                note=f"{cluster.target}: poll until every Kustomization and HelmRelease is Ready",
                timeout=60)


def wait_all_ready(cluster: Cluster, runner: Recorder, kubectl: str, bound: float, settle: int = 3) -> list[ObjectState]:
    """Poll until every Kustomization and HelmRelease is Ready and the set has
    stopped growing for ``settle`` polls in a row; raise with the stragglers
    when ``bound`` seconds pass."""
    step = list_step(cluster, kubectl)
    if not runner.live:
        runner.run(step)
        return []
    deadline, stable, last = time.monotonic() + bound, 0, None
    current: list[ObjectState] = []
    while True:
        proc = runner.run(step, check=False)
        if proc.returncode == 0:
            current = states(json.loads(proc.stdout))
            names = sorted((s.kind, s.namespace, s.name) for s in current)
            if current and all(s.ready for s in current):
                stable = stable + 1 if names == last else 1
                if stable >= settle:
                    return current
            else:
                stable = 0
            last = names
        if time.monotonic() > deadline:
            waiting = [str(s) for s in current if not s.ready] or ["no Kustomization or HelmRelease exists yet"]
            raise TimeoutError(
                f"{cluster.target}: not Ready within {bound:.0f}s:\n  " + "\n  ".join(waiting)
            )
        time.sleep(2)


def get_json(cluster: Cluster, runner: Recorder, kubectl: str, *what: str) -> dict:
    proc = runner.run(Step([kubectl, *kube_args(cluster), "get", *what, "-o", "json"], timeout=60))
    return json.loads(proc.stdout) if runner.live else {}
