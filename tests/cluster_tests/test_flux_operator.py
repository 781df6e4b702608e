"""The Flux Operator proof's pieces that need no cluster: the switch of a
cluster directory from bootstrap to the operator builds to exactly the
FluxInstance and the directory's own objects, and the comparison with the
bootstrapped cluster finds each kind of difference."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yamlload

from cluster.scenarios import flux_operator
from cluster.status import ObjectState
from harness import tools
from harness.model import PROJECT_ROOT


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    for part in ("clusters/staging", str(flux_operator.INSTANCE.parent)):
        shutil.copytree(PROJECT_ROOT / part, tmp_path / part)
    return tmp_path


def test_the_switch_puts_the_flux_instance_in_place_of_the_gotk_files(clone: Path) -> None:
    kustomize = tools.find("kustomize")
    if kustomize is None:
        pytest.skip(tools.missing_reason("kustomize"))
    written = flux_operator.switch_to_operator(clone, "http://127.0.0.1:1/x.git", "a-branch")
    assert written == clone / "clusters/staging/flux-system/flux-instance.yaml"
    assert not any((clone / "clusters/staging/flux-system" / name).exists() for name in flux_operator.GOTK_FILES)
    built = subprocess.run([kustomize, "build", str(clone / "clusters/staging")], check=True, capture_output=True,
                           text=True).stdout
    docs = [d for d in yamlload.load_all(built) if d]
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in docs)
    assert ("FluxInstance", "flux") in kinds
    assert ("GitRepository", "flux-system") not in kinds, "bootstrap's sync objects are still applied"
    assert ("Kustomization", "flux-system") not in kinds
    instance = next(d for d in docs if d["kind"] == "FluxInstance")
    assert instance["spec"]["sync"]["url"] == "http://127.0.0.1:1/x.git"
    assert instance["spec"]["sync"]["ref"] == "refs/heads/a-branch"
    assert instance["spec"]["sync"]["path"] == "clusters/staging"


def state(kind: str, name: str, ready: bool = True) -> ObjectState:
    return ObjectState(kind, "flux-system", name, ready, "")


def deployments(*flags: str) -> dict:
    return {"items": [{"metadata": {"name": name}, "spec": {"template": {"spec": {"containers": [
        {"name": "manager", "args": list(flags)}]}}}} for name in ("kustomize-controller", "helm-controller")]}


LOCKED = deployments("--no-cross-namespace-refs=true", "--default-service-account=default")
LAYERS = {"platform-baseline": "1.1.0@sha256:aa", "platform-configs": "1.1.0@sha256:aa"}


def test_the_same_state_compares_equal() -> None:
    same = [state("Kustomization", "apps"), state("HelmRelease", "podinfo")]
    assert flux_operator.compare(same, same, LAYERS, dict(LAYERS), LOCKED) == []


def test_each_difference_is_named() -> None:
    bootstrapped = [state("Kustomization", "apps"), state("HelmRelease", "podinfo")]
    by_operator = [state("Kustomization", "apps", ready=False)]
    problems = flux_operator.compare(by_operator, bootstrapped, {"platform-baseline": "1.0.0@sha256:bb"}, LAYERS,
                                     deployments("--no-cross-namespace-refs=true"))
    text = "\n".join(problems)
    assert "HelmRelease flux-system/podinfo exists after bootstrap but not after the operator" in text
    assert "not Ready after the operator: Kustomization flux-system/apps" in text
    assert "Kustomization platform-baseline applied 1.0.0@sha256:bb, bootstrap's 1.1.0@sha256:aa" in text
    assert "kustomize-controller runs without --default-service-account=default" in text
