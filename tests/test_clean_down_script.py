"""snippets/sandbox-clean-down.sh without a cluster: the order it deletes in,
what it checks after each deletion, the volumes it waits for, and the
clusters it refuses. kubectl is ``fake_kubectl`` (a cluster described in
JSON, changed by the script's calls), served from this process to a bash
client; flux records its arguments."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

import fake_kubectl
from harness.model import PROJECT_ROOT
from test_snippet_scripts import tool

SCRIPT = "snippets/sandbox-clean-down.sh"
CONTEXT = "kind-sandbox"


def ks(name: str, *, deps: tuple[str, ...] = (), labelled: bool = False, path: str = "",
       inventory: tuple[str, ...] = ()) -> dict:
    """A Kustomization as the API returns it."""
    meta: dict = {"name": name, "namespace": "flux-system"}
    if labelled:
        meta["labels"] = {"gitops.example.org/external-state": "true"}
    spec: dict = {"path": path or f"./{name}"}
    if deps:
        spec["dependsOn"] = [{"name": d} for d in deps]
    return {"metadata": meta, "spec": spec,
            "status": {"inventory": {"entries": [{"id": i, "v": "v1"} for i in inventory]}}}


SANDBOX = {
    "current_context": CONTEXT,
    "context": CONTEXT,
    "kustomizations": [
        ks("flux-system", path="./clusters/sandbox-a"),
        ks("platform-baseline", inventory=("_podinfo__Namespace",)),
        ks("platform-controllers", deps=("platform-baseline",),
           inventory=("cert-manager_cert-manager_apps_Deployment",
                      "_certificates.cert-manager.io_apiextensions.k8s.io_CustomResourceDefinition",
                      "external-secrets_external-secrets_apps_Deployment")),
        ks("platform-configs", deps=("platform-controllers",),
           inventory=("_selfsigned_cert-manager.io_ClusterIssuer",)),
        # Labelled and without dependsOn: its fields must not shift.
        ks("dns-records", labelled=True, inventory=("podinfo_www_externaldns.k8s.io_DNSEndpoint",)),
        # As apps/base/podinfo applies them: the release, its cache's volume,
        # and the ExternalSecret with its SecretStore, whose finalizer only the
        # operator (external-secrets, in platform-controllers) removes.
        ks("apps", deps=("platform-configs",), labelled=True,
           inventory=("podinfo_podinfo_helm.toolkit.fluxcd.io_HelmRelease", "podinfo_data__PersistentVolumeClaim",
                      "podinfo_podinfo-api_external-secrets.io_ExternalSecret",
                      "podinfo_podinfo_external-secrets.io_SecretStore")),
    ],
    "helmreleases": ["podinfo/leftover"],
    "crds": ["gitrepositories.source.toolkit.fluxcd.io", "ocirepositories.source.toolkit.fluxcd.io",
             "helmrepositories.source.toolkit.fluxcd.io", "helmcharts.source.toolkit.fluxcd.io",
             "buckets.source.toolkit.fluxcd.io"],
    "sources": {"gitrepositories.source.toolkit.fluxcd.io": ["flux-system", "platform"],
                "helmrepositories.source.toolkit.fluxcd.io": ["podinfo"]},
    "objects": [
        ["Namespace", "podinfo", ""],
        ["Deployment.v1.apps", "cert-manager", "cert-manager"],
        ["CustomResourceDefinition.v1.apiextensions.k8s.io", "certificates.cert-manager.io", ""],
        ["ClusterIssuer.v1.cert-manager.io", "selfsigned", ""],
        ["DNSEndpoint.v1.externaldns.k8s.io", "www", "podinfo"],
        ["HelmRelease.v1.helm.toolkit.fluxcd.io", "podinfo", "podinfo"],
        ["Deployment.v1.apps", "external-secrets", "external-secrets"],
        ["ExternalSecret.v1.external-secrets.io", "podinfo-api", "podinfo"],
        ["SecretStore.v1.external-secrets.io", "podinfo", "podinfo"],
        ["PersistentVolume", "unrelated", ""],
        ["PersistentVolumeClaim", "data", "podinfo"],
    ],
    "kinds_gone": [],
    "stuck": [],
    "volumes": [{"name": "pvc-data", "policy": "Delete"}, {"name": "kept", "policy": "Retain"}],
    "volumes_stuck": False,
}


def clean_down(tmp: Path, cluster: dict, *args: str) -> subprocess.CompletedProcess:
    (tmp / "cluster.json").write_text(json.dumps(cluster), encoding="utf-8")
    flux = tool(tmp, "flux", '#!/usr/bin/env bash\nprintf "flux %s\\n" "$*" >> "$FAKE_CALLS"\n')
    with fake_kubectl.serve(tmp / "cluster.json", tmp / "calls") as client:
        kubectl = tool(tmp, "kubectl", client)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp), "LC_ALL": "C.UTF-8",
               "KUBECTL": kubectl, "FLUX": flux, "FAKE_CLUSTER": str(tmp / "cluster.json"),
               "FAKE_CALLS": str(tmp / "calls")}
        return subprocess.run(["bash", SCRIPT, *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                              timeout=120)


def calls(tmp: Path) -> list[str]:
    path = tmp / "calls"
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def changes(tmp: Path) -> list[str]:
    """The calls that change the cluster: flux's, and kubectl patch, delete, wait."""
    return [c for c in calls(tmp) if c.startswith("flux ") or re.search(r" (patch|delete|wait) ", f" {c} ")]


def deleted_kustomizations(tmp: Path) -> list[str]:
    return [c.split(" delete kustomization ")[1].split(" ")[0] for c in calls(tmp) if " delete kustomization " in c]


def said(proc: subprocess.CompletedProcess) -> str:
    return f"{SCRIPT} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"


def sandbox(**changes_to_make) -> dict:
    cluster = copy.deepcopy(SANDBOX)
    cluster.update(changes_to_make)
    return cluster


@pytest.fixture(scope="module")
def default_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """One clean-down of the default sandbox, which several tests read (each
    run makes some fifty kubectl calls)."""
    tmp = tmp_path_factory.mktemp("default-run")
    return tmp, clean_down(tmp, sandbox(), "--context", CONTEXT, "--timeout", "7m")


def test_cleans_a_sandbox_down_in_order(default_run) -> None:
    tmp_path, proc = default_run
    assert proc.returncode == 0, said(proc)
    assert changes(tmp_path)[0] == f"flux --context {CONTEXT} suspend kustomization flux-system -n flux-system"
    order = deleted_kustomizations(tmp_path)
    assert order == ["dns-records", "apps", "platform-configs", "platform-controllers", "platform-baseline"] or \
        order == ["apps", "dns-records", "platform-configs", "platform-controllers", "platform-baseline"], (
            f"{SCRIPT}: the labelled Kustomizations (dns-records has no dependsOn) must go first, then the rest "
            f"in reverse dependency order; deleted: {order}\n" + said(proc))
    assert "only flux-system is left" in proc.stdout, said(proc)


def test_the_kustomization_waits_as_long_as_the_script(default_run) -> None:
    tmp_path, proc = default_run
    assert proc.returncode == 0, said(proc)
    patches = [c for c in calls(tmp_path) if " patch kustomization " in c]
    assert patches and all('{"spec":{"deletionPolicy":"WaitForTermination","timeout":"7m"}}' in c for c in patches), (
        f"{SCRIPT}: each Kustomization must get deletionPolicy WaitForTermination and timeout --timeout before "
        "it is deleted\n" + "\n".join(patches))


def test_fails_when_an_applied_object_outlives_its_kustomization(tmp_path: Path) -> None:
    stuck = [["DNSEndpoint.v1.externaldns.k8s.io", "www", "podinfo"]]
    proc = clean_down(tmp_path, sandbox(stuck=stuck), "--context", CONTEXT, "--timeout", "2m")
    assert proc.returncode == 1, said(proc)
    assert "Kustomization dns-records is deleted, but not everything it applied is gone after 2m" in proc.stderr, \
        said(proc)
    assert "DNSEndpoint.v1.externaldns.k8s.io/www (namespace podinfo)" in proc.stderr, said(proc)
    assert not any("helmreleases" in c for c in changes(tmp_path)), f"{SCRIPT} went on after the failed check"


def test_an_object_whose_kind_is_gone_is_gone(tmp_path: Path) -> None:
    cluster = sandbox(kinds_gone=["ClusterIssuer.v1.cert-manager.io"],
                      stuck=[["ClusterIssuer.v1.cert-manager.io", "selfsigned", ""]])
    proc = clean_down(tmp_path, cluster, "--context", CONTEXT)
    assert proc.returncode == 0, said(proc)


def test_waits_for_volumes_the_driver_deletes(default_run) -> None:
    tmp_path, proc = default_run
    assert proc.returncode == 0, said(proc)
    waits = [c for c in calls(tmp_path) if " wait " in c]
    assert waits == [f"--context {CONTEXT} wait --for=delete persistentvolume/pvc-data --timeout=7m"], (
        f"{SCRIPT}: it must wait (up to --timeout) for the PersistentVolumes with reclaimPolicy Delete, and only "
        f"for those\n{waits}\n" + said(proc))
    kustomization_gone = calls(tmp_path).index(next(c for c in calls(tmp_path) if " delete kustomization " in c))
    assert calls(tmp_path).index(waits[0]) > kustomization_gone


def test_fails_when_volumes_stay(tmp_path: Path) -> None:
    proc = clean_down(tmp_path, sandbox(volumes_stuck=True), "--context", CONTEXT)
    assert proc.returncode == 1, said(proc)
    assert "persistentvolume/pvc-data" in proc.stderr and "would leak their volumes" in proc.stderr, said(proc)
    assert "only flux-system is left" not in proc.stdout


def test_sources_of_a_kind_without_crd_are_skipped_and_the_rest_deleted(tmp_path: Path) -> None:
    cluster = sandbox(crds=[c for c in SANDBOX["crds"] if not c.startswith("buckets.")])
    proc = clean_down(tmp_path, cluster, "--context", CONTEXT)
    assert proc.returncode == 0, said(proc)
    assert "no buckets.source.toolkit.fluxcd.io on this cluster" in proc.stdout, said(proc)
    deletes = [c for c in calls(tmp_path) if "delete gitrepository." in c]
    assert deletes == [f"--context {CONTEXT} -n flux-system delete gitrepository.source.toolkit.fluxcd.io/platform "
                       "helmrepository.source.toolkit.fluxcd.io/podinfo --wait=true --timeout=15m"], (
        f"{SCRIPT}: every source but flux-system must be deleted although one source kind is not installed\n"
        + said(proc))


def test_a_failing_source_listing_stops_the_script(tmp_path: Path) -> None:
    kind = "ocirepositories.source.toolkit.fluxcd.io"
    cluster = sandbox(failing_kinds={kind: f'Error from server (Forbidden): {kind} is forbidden'})
    proc = clean_down(tmp_path, cluster, "--context", CONTEXT)
    assert proc.returncode != 0, said(proc)
    assert "Forbidden" in proc.stderr, said(proc)
    assert not any("delete gitrepository." in c for c in calls(tmp_path)), said(proc)


@pytest.mark.parametrize(
    ("cluster", "message"),
    [
        (sandbox(current_context="kind-production"), "the current context is 'kind-production', not 'kind-sandbox'"),
        (sandbox(kustomizations=[ks("flux-system", path="./clusters/production"), *SANDBOX["kustomizations"][1:]]),
         "reconciles './clusters/production', not a ./clusters/sandbox-* directory"),
        (sandbox(kustomizations=[ks("flux-system", path="./clusters/sandbox-a/../production"),
                                 *SANDBOX["kustomizations"][1:]]),
         "not a ./clusters/sandbox-* directory"),
    ],
    ids=["not-current", "production-root", "path-escapes"],
)
def test_refuses_a_cluster_that_is_not_the_sandbox(tmp_path: Path, cluster: dict, message: str) -> None:
    proc = clean_down(tmp_path, cluster, "--context", CONTEXT)
    assert proc.returncode == 1 and message in proc.stderr, said(proc)
    assert changes(tmp_path) == [], f"{SCRIPT} changed the cluster although it refused: {changes(tmp_path)}"


def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    proc = clean_down(tmp_path, sandbox(), "--context", CONTEXT, "--dry-run")
    assert proc.returncode == 0, said(proc)
    assert changes(tmp_path) == [], f"{SCRIPT} --dry-run changed the cluster: {changes(tmp_path)}"
    assert "Kustomizations to delete, in this order:" in proc.stdout, said(proc)
    assert "+ " in proc.stdout and "wait --for=delete persistentvolume/pvc-data" in proc.stdout, said(proc)


def test_the_external_secret_goes_while_its_operator_still_runs(default_run) -> None:
    """The ExternalSecret of apps/base/podinfo holds a finalizer that only
    External Secrets Operator removes: it must be deleted, and found gone,
    before platform-controllers (which runs the operator) is deleted."""
    tmp_path, proc = default_run
    assert proc.returncode == 0, said(proc)
    every = calls(tmp_path)
    checked = [i for i, c in enumerate(every) if " get ExternalSecret.v1.external-secrets.io podinfo-api " in c]
    operator_deleted = every.index(next(c for c in every if " delete kustomization platform-controllers " in c))
    apps_deleted = every.index(next(c for c in every if " delete kustomization apps " in c))
    assert checked and apps_deleted < min(checked) and max(checked) < operator_deleted, (
        f"{SCRIPT}: the ExternalSecret (in apps' inventory) must be checked gone after apps is deleted and "
        f"before platform-controllers, which runs its operator, is deleted\n" + "\n".join(every))
