"""Proof 1: a cluster bootstraps from its own directory and every Flux
Kustomization and HelmRelease reaches Ready within a bound."""

from __future__ import annotations

from .. import status
from ..providers import FLUX_NAMESPACE
from . import READY_BOUND


def run(env, target: str, bound: float = READY_BOUND) -> list[status.ObjectState]:
    cluster = env.cluster(target)
    ready = status.wait_all_ready(env, cluster, bound)
    if not env.live:
        return ready
    source = status.get_json(cluster, env.runner, env.tool("kubectl"),
                             "gitrepositories.source.toolkit.fluxcd.io/flux-system", "-n", FLUX_NAMESPACE)
    url = source.get("spec", {}).get("url")
    assert url == env.endpoints.git_url, (
        f"{target}: the flux-system GitRepository reads {url}, not the harness's snapshot "
        f"{env.endpoints.git_url}; check clusters/{target}/flux-system/ and the bootstrap output"
    )
    kinds = {s.kind for s in ready}
    assert "Kustomization" in kinds, f"{target}: no Flux Kustomization was applied from clusters/{target}/"
    return ready
