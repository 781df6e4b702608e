"""snippets/sandbox-clone.sh and snippets/sandbox-return.sh on a clusters/
of the tree's shape that the test writes (a git repository of its own): the sandbox's gotk-sync.yaml, the
files the return leaves alone, and the returns it refuses."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yamlload

from harness import tools
from harness.model import PROJECT_ROOT

CLONE = "snippets/sandbox-clone.sh"
RETURN = "snippets/sandbox-return.sh"
BRANCH = "PLAT-9-try"


# The shape of a cluster directory that the scripts read (CONTRIBUTING.md, "The
# clusters"), written by the test: the scripts are tested here, not the tree,
# so a mistake in the tree's own clusters/ fails the tree's checks, not these.
SYNC = """\
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: flux-system
  namespace: flux-system
spec:
  interval: 1m0s
  ref:
    branch: main
  secretRef:
    name: flux-system
  url: https://git.example.test/fleet
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: flux-system
  namespace: flux-system
spec:
  interval: 10m0s
  path: ./clusters/{cluster}
  prune: true
  sourceRef:
    kind: GitRepository
    name: flux-system
"""
GIT_SOURCE = """\
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: platform
  namespace: flux-system
spec:
  interval: 1m0s
  url: https://git.example.test/fleet
  ref:
    branch: main
"""
OCI_SOURCE = """\
apiVersion: source.toolkit.fluxcd.io/v1
kind: OCIRepository
metadata:
  name: platform
  namespace: flux-system
spec:
  interval: 10m0s
  url: oci://registry.example.test/platform
  ref:
    {ref}
"""
APPS = """\
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: apps
  namespace: flux-system
spec:
  interval: 10m0s
  prune: true
  sourceRef:
    kind: GitRepository
    name: flux-system
  path: ./apps/{cluster}
  postBuild:
    substitute:
      cluster_name: ${{quote}}${{cluster_name:={cluster}}}${{quote}}
"""
ALERTS = """\
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata:
  name: failed-reconciliations
  namespace: flux-system
spec:
  providerRef:
    name: platform-team
  eventSources:
    - kind: Kustomization
      name: "*"
"""
PLATFORM = {"development": GIT_SOURCE, "staging": OCI_SOURCE.format(ref='semver: ">=1.0.0 <2.0.0"'),
            "production": OCI_SOURCE.format(ref='tag: "1.0.0"')}


def write_clusters(root: Path) -> None:
    for cluster, platform in PLATFORM.items():
        files = {
            "flux-system/gotk-sync.yaml": SYNC.format(cluster=cluster),
            "flux-system/gotk-components.yaml": "# written by flux bootstrap\n",
            "flux-system/kustomization.yaml": "resources:\n  - gotk-components.yaml\n  - gotk-sync.yaml\n",
            "kustomization.yaml": "resources:\n  - flux-system\n  - platform.yaml\n  - apps.yaml\n",
            "platform.yaml": platform,
            "apps.yaml": APPS.format(cluster=cluster),
        }
        if cluster != "development":  # the clusters on platform releases report their failures
            files["alerts.yaml"] = ALERTS
            files["kustomization.yaml"] += "  - alerts.yaml\n"
        for name, text in files.items():
            path = root / "clusters" / cluster / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A clusters/ of the shape the tree's has, in a git repository on branch BRANCH."""
    root = tmp_path / "repo"
    write_clusters(root)
    subprocess.run(["git", "init", "--quiet", "--initial-branch", BRANCH, str(root)], check=True, timeout=60)
    return root


def script(root: Path, name: str, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(root.parent), "LC_ALL": "C.UTF-8"}
    return subprocess.run(["bash", name, *args, "--root", str(root)], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def said(name: str, proc: subprocess.CompletedProcess) -> str:
    return f"{name} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"


def sync_objects(path: Path) -> dict[str, dict]:
    return {doc["kind"]: doc for doc in yamlload.load_all(path.read_text(encoding="utf-8")) if doc}


def git_switch(root: Path, branch: str) -> None:
    subprocess.run(["git", "-C", str(root), "switch", "--quiet", "--create", branch], check=True, timeout=60)


def test_clone_writes_the_sandbox_sync_file(repo: Path) -> None:
    proc = script(repo, CLONE, "development", "sandbox-a", "--branch", "PLAT-1-other")
    assert proc.returncode == 0, said(CLONE, proc)
    written = repo / "clusters/sandbox-a/flux-system/gotk-sync.yaml"
    assert written.is_file(), f"{CLONE} did not write {written.relative_to(repo)}\n" + said(CLONE, proc)
    sync = sync_objects(written)
    source = sync_objects(repo / "clusters/development/flux-system/gotk-sync.yaml")
    assert sync["GitRepository"]["spec"]["ref"] == {"branch": "PLAT-1-other"}, (
        f"{CLONE}: the sandbox's flux-system source must follow --branch\n" + written.read_text(encoding="utf-8"))
    assert sync["Kustomization"]["spec"]["path"] == "./clusters/sandbox-a", written.read_text(encoding="utf-8")
    assert sync["GitRepository"]["spec"]["url"] == source["GitRepository"]["spec"]["url"]


def test_clone_builds_at_once(repo: Path) -> None:
    kustomize = tools.find("kustomize")
    if kustomize is None:
        pytest.skip(f"building the clone needs kustomize: {tools.missing_reason('kustomize')}")
    proc = script(repo, CLONE, "development", "sandbox-a")
    assert proc.returncode == 0, said(CLONE, proc)
    built = subprocess.run([kustomize, "build", str(repo / "clusters/sandbox-a")], capture_output=True, text=True,
                           timeout=120)
    assert built.returncode == 0, (
        f"kustomize build of the directory {CLONE} made (clusters/sandbox-a) failed: {built.stderr.strip()}")
    paths = [doc["spec"]["path"] for doc in yamlload.load_all(built.stdout)
             if doc and doc["kind"] == "Kustomization" and doc["metadata"]["name"] == "flux-system"]
    assert paths == ["./clusters/sandbox-a"], f"the clone's flux-system Kustomization reconciles {paths}"


def test_clone_follows_the_checked_out_branch_by_default(repo: Path) -> None:
    proc = script(repo, CLONE, "production", "sandbox-perf")
    assert proc.returncode == 0, said(CLONE, proc)
    sync = sync_objects(repo / "clusters/sandbox-perf/flux-system/gotk-sync.yaml")
    assert sync["GitRepository"]["spec"]["ref"] == {"branch": BRANCH}, said(CLONE, proc)
    assert (repo / "clusters/sandbox-perf/platform.yaml").read_text(encoding="utf-8") == \
        (repo / "clusters/production/platform.yaml").read_text(encoding="utf-8"), \
        f"{CLONE}: a sandbox of production must run production's release"


def test_clone_refuses_the_branch_development_follows(repo: Path) -> None:
    git_switch(repo, "main")
    proc = script(repo, CLONE, "development", "sandbox-a")
    assert proc.returncode == 1 and "follows branch main already" in proc.stderr, said(CLONE, proc)
    assert not (repo / "clusters/sandbox-a").exists(), f"{CLONE} refused but left clusters/sandbox-a"


def test_clone_dry_run_writes_nothing(repo: Path) -> None:
    proc = script(repo, CLONE, "development", "sandbox-a", "--dry-run")
    assert proc.returncode == 0, said(CLONE, proc)
    assert not (repo / "clusters/sandbox-a").exists(), f"{CLONE} --dry-run made clusters/sandbox-a"
    assert "> " + str(repo / "clusters/sandbox-a/flux-system/gotk-sync.yaml") in proc.stdout, said(CLONE, proc)


def test_return_keeps_the_target_flux_files(repo: Path) -> None:
    target = repo / "clusters/development/flux-system"
    (target / "gotk-components.yaml").write_text("# development's Flux\n", encoding="utf-8")
    before = {name: (target / name).read_text(encoding="utf-8") for name in ("gotk-sync.yaml", "gotk-components.yaml")}
    assert script(repo, CLONE, "development", "sandbox-a").returncode == 0
    sandbox = repo / "clusters/sandbox-a"
    # A different size: rsync -a skips a file of the same size and mtime.
    (sandbox / "flux-system/gotk-components.yaml").write_text("# the Flux version the sandbox was bootstrapped with\n",
                                                              encoding="utf-8")
    (sandbox / "change.yaml").write_text("# a change\n", encoding="utf-8")
    proc = script(repo, RETURN, "sandbox-a", "development")
    assert proc.returncode == 0, said(RETURN, proc)
    after = {name: (target / name).read_text(encoding="utf-8") for name in before}
    assert after == before, f"{RETURN} copied the sandbox's flux-system/gotk-*.yaml over development's"
    assert (repo / "clusters/development/change.yaml").is_file(), f"{RETURN} did not bring the change back"
    assert not sandbox.exists(), f"{RETURN} left clusters/sandbox-a"
    assert "branch: main" in (repo / "clusters/development/platform.yaml").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("source", "edit", "target", "message"),
    [
        ("production", None, "development", "reconciles './apps/production', not ./apps/development"),
        ("staging", None, "production", "reconciles './apps/staging', not ./apps/production"),
        ("production", ("./apps/production", "./apps/development"), "development",
         "is a OCIRepository, that of clusters/development a GitRepository"),
    ],
    ids=["production-to-development", "staging-to-production", "oci-source-to-development"],
)
def test_return_refuses_a_sandbox_of_another_cluster(repo: Path, source: str, edit: tuple[str, str] | None,
                                                      target: str, message: str) -> None:
    assert script(repo, CLONE, source, "sandbox-x").returncode == 0
    apps = repo / "clusters/sandbox-x/apps.yaml"
    if edit:
        apps.write_text(apps.read_text(encoding="utf-8").replace(*edit), encoding="utf-8")
    before = {p: p.read_bytes() for p in (repo / "clusters" / target).rglob("*") if p.is_file()}
    proc = script(repo, RETURN, "sandbox-x", target)
    assert proc.returncode == 1 and message in proc.stderr, said(RETURN, proc)
    after = {p: p.read_bytes() for p in (repo / "clusters" / target).rglob("*") if p.is_file()}
    assert after == before, f"{RETURN} refused but changed clusters/{target}"
    assert (repo / "clusters/sandbox-x").is_dir(), f"{RETURN} refused but removed clusters/sandbox-x"


@pytest.mark.parametrize("source", ["staging", "production"])
def test_clone_leaves_the_alerts_out(repo: Path, source: str) -> None:
    proc = script(repo, CLONE, source, "sandbox-perf")
    assert proc.returncode == 0, said(CLONE, proc)
    sandbox = repo / "clusters/sandbox-perf"
    assert not (sandbox / "alerts.yaml").exists(), f"{CLONE}: a sandbox of {source} must not alert {source}'s channel"
    listed = yamlload.load((sandbox / "kustomization.yaml").read_text(encoding="utf-8"))["resources"]
    assert listed == ["flux-system", "platform.yaml", "apps.yaml"], f"{CLONE} left the sandbox listing {listed}"
    assert (repo / "clusters" / source / "alerts.yaml").is_file(), f"{CLONE} removed {source}'s own alerts.yaml"


def test_return_keeps_the_target_alerts(repo: Path) -> None:
    assert script(repo, CLONE, "staging", "sandbox-perf").returncode == 0
    before = (repo / "clusters/staging/alerts.yaml").read_text(encoding="utf-8")
    proc = script(repo, RETURN, "sandbox-perf", "staging")
    assert proc.returncode == 0, said(RETURN, proc)
    staging = repo / "clusters/staging"
    assert (staging / "alerts.yaml").read_text(encoding="utf-8") == before, f"{RETURN} dropped staging's alerts.yaml"
    listed = yamlload.load((staging / "kustomization.yaml").read_text(encoding="utf-8"))["resources"]
    assert listed == ["flux-system", "platform.yaml", "apps.yaml", "alerts.yaml"], (
        f"{RETURN} left clusters/staging listing {listed}\n" + said(RETURN, proc))
