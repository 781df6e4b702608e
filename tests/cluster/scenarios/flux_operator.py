"""Proof: the Flux Operator brings a cluster to the state bootstrap brings
staging to (docs/design/installing-flux.md, The Flux Operator).

On a work branch of the snapshot, ``clusters/staging/flux-system/`` is
switched to the operator as the page describes: ``gotk-components.yaml`` and
``gotk-sync.yaml`` go, the FluxInstance of ``create/flux-operator/`` takes
their place, with its ``sync`` pointed at the tier's git server and that
branch (a reader points it at their fork). A cluster made for this proof
gets what its creator provides (``snippets/cluster-vars.sh`` with the
release key, and the ``flux-system`` secret the FluxInstance's ``pullSecret``
names), then the operator's ``install.yaml`` and the FluxInstance.

The operator installs Flux from the manifests it carries (no distribution
artifact is pulled; the FluxInstance names none): on kind it runs as its
pod, from its image built here, and the controllers it installs run as pods
(the provider names the tier's builds by the digests the operator asks
for); on kwok it runs on the host (``operator_host``), and the Flux
controllers it installs start on the host as soon as their Deployments
exist, exactly as after bootstrap. While the proof waits for the
FluxInstance, a Stalled one ends the wait with the operator's message. The proof
asserts that the FluxInstance is Ready, that the cluster holds the same
Kustomizations and HelmReleases as the bootstrapped staging cluster, all
Ready, with the platform layers on the same release, and that the
controllers run with the tree's lockdown flags. Then the cluster goes.

What differs from bootstrap by design: the operator installs the newest Flux
its manifests hold inside the FluxInstance's ``2.9.x`` (the pinned operator
carries up to 2.9.4; bootstrap installs ``flux.version``); on kind the
controllers are built at the versions it installs (but one, which
versions.yaml ``operator-helm-controller`` says), and on kwok the processes
that run are the tier's controllers, built for ``flux.version``, with the
arguments of the operator's Deployments.
"""

from __future__ import annotations

import time
from pathlib import Path

import yaml

import yamlload

from .. import names, status
from ..plan import Step
from ..providers import FLUX_NAMESPACE, Cluster, kube_args
from . import READY_BOUND, flux_reconcile, git

TARGET = names.OPERATOR
DIRECTORY = "staging"
INSTANCE = Path("create/flux-operator/flux-instance.yaml")
BRANCH = "docs-test-flux-operator"
GOTK_FILES = ("gotk-components.yaml", "gotk-sync.yaml")
LOCKDOWN = {"kustomize-controller": ("--no-cross-namespace-refs=true", "--default-service-account=default"),
            "helm-controller": ("--no-cross-namespace-refs=true", "--default-service-account=default")}
FLUX_KINDS = "kustomizations.kustomize.toolkit.fluxcd.io,helmreleases.helm.toolkit.fluxcd.io"


class OperatorUnavailable(RuntimeError):
    """The operator cannot run with this provider, or is not built."""


def switch_to_operator(clone: Path, url: str, branch: str, directory: str = DIRECTORY) -> Path:
    """Move ``clusters/<directory>`` from bootstrap to the operator in a
    clone: the FluxInstance in place of the gotk files, its sync on ``url``
    and ``branch``. Returns the FluxInstance file written."""
    instance = yamlload.load((clone / INSTANCE).read_text(encoding="utf-8"))
    sync = instance["spec"]["sync"]
    sync["url"], sync["ref"] = url, f"refs/heads/{branch}"
    if sync.get("path") != f"clusters/{directory}":
        raise AssertionError(f"{INSTANCE}: spec.sync.path is {sync.get('path')}, expected clusters/{directory}")
    folder = clone / "clusters" / directory / "flux-system"
    for name in GOTK_FILES:
        (folder / name).unlink()
    target = folder / "flux-instance.yaml"
    target.write_text(yaml.safe_dump(instance, sort_keys=False), encoding="utf-8")
    (folder / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - flux-instance.yaml\n",
        encoding="utf-8")
    return target


def operator_files(env) -> tuple[str, str, str]:
    """(binary, Flux manifests folder, install.yaml) of the pinned operator
    in the tool cache."""
    from toolchain import cache, pins

    tool = pins.tools(env.root).get("flux-operator")
    if tool is None:
        raise OperatorUnavailable("versions.yaml pins no flux-operator tool")
    entry = cache.entry(tool)
    if env.live and cache.record(tool) is None:
        raise OperatorUnavailable(f"the Flux Operator {tool.version} is not built: run `nox -s tools -- flux-operator`")
    return str(entry / "bin" / "flux-operator"), str(entry / "data"), str(entry / "install.yaml")


KEY = "flux-operator"
# How long the operator's cluster may take to catch up with staging after
# running ahead (its branch brought up to main, its sources reconciled).
CATCH_UP_BOUND = 180


def start_ahead(env) -> None:
    """The whole proof in the background, once staging is made and the
    private fork's proof is done (``Provider.proofs_ahead``): the operator's
    cluster is made, caught up with what changed on main meanwhile, and
    compared with staging until both agree; then it goes, and its memory
    with it. It yields the cores to the tests in the foreground."""
    from . import private_fork

    env.ahead_proof(KEY, lambda: finish(env, prepare(env), ran_ahead=True), after=(DIRECTORY, private_fork.KEY),
                    yielding=True)


def proof(env) -> None:
    """The proof: the result of what ``start_ahead`` runs, or all of it now."""
    env.proof_result(KEY, lambda: finish(env, prepare(env), ran_ahead=False))


def prepare(env) -> tuple[Path, Cluster]:
    """The switch on a work branch, a cluster with the operator, and the
    FluxInstance Ready with every Kustomization and HelmRelease; returns
    (the clone, the cluster)."""
    problem = env.provider.operator_problem()
    if problem:
        raise OperatorUnavailable(problem)
    binary, data, install = operator_files(env)
    endpoints = env.ensure_endpoints()
    kubectl = env.tool("kubectl")
    clone = env.checkout("flux-operator")
    git(env, clone, "switch", "--quiet", "--create", BRANCH, note="a work branch for the switch to the operator")
    env.runner.call(Step(["edit", f"clusters/{DIRECTORY}/flux-system", f"the gotk files -> {INSTANCE.name}"],
                         note="switch staging's directory to the operator, as installing-flux.md describes",
                         in_process=True),
                    lambda: switch_to_operator(clone, endpoints.git_url, BRANCH))
    git(env, clone, "add", "--all", f"clusters/{DIRECTORY}")
    git(env, clone, "commit", "--quiet", "--message", f"{DIRECTORY}: Flux installed by the Flux Operator")
    git(env, clone, "push", "--quiet", "origin", BRANCH, note="push the work branch to the served snapshot")

    cluster = env.bare_cluster(TARGET)
    kube = [kubectl, *kube_args(cluster)]
    # What the cluster's creator provides: the cluster variables (and the
    # release key), and the pull secret the FluxInstance names.
    from .doc_blocks import exports

    env.runner.run(Step(["bash", "snippets/cluster-vars.sh", DIRECTORY, "--context", cluster.context],
                        env={**exports(env), "PATH": env.tool_path(), "KUBECTL": kubectl,
                             "KUBECONFIG": cluster.kubeconfig},
                        cwd=str(clone), context=cluster.context, kubeconfig=cluster.kubeconfig, timeout=120,
                        note=f"{TARGET}: cluster variables of {DIRECTORY} (snippets/cluster-vars.sh)"))
    env.runner.run(Step([*kube, "-n", FLUX_NAMESPACE, "create", "secret", "generic", "flux-system",
                         "--from-literal=username=git", f"--from-literal=password={names.GIT_PASSWORD}"],
                        note=f"{TARGET}: the FluxInstance's pullSecret (the tier's git server takes any password)",
                        context=cluster.context, kubeconfig=cluster.kubeconfig, timeout=60))
    env.runner.run(Step([*kube, "apply", "--server-side", "-f", install],
                        note=f"{TARGET}: the Flux Operator's install.yaml (its CRDs, RBAC and Deployment)",
                        context=cluster.context, kubeconfig=cluster.kubeconfig, timeout=120))
    env.runner.run(Step([kubectl, *kube_args(cluster), "wait", "--for=condition=Established",
                         "crd/fluxinstances.fluxcd.controlplane.io", "--timeout=60s"], timeout=90,
                        note=f"{TARGET}: the FluxInstance CRD is served"))
    env.runner.run(Step([*kube, "apply", "--server-side", "-f",
                         str(clone / "clusters" / DIRECTORY / "flux-system" / "flux-instance.yaml")],
                        note=f"{TARGET}: the FluxInstance, as committed on {BRANCH}",
                        context=cluster.context, kubeconfig=cluster.kubeconfig, timeout=60))
    env.provider.run_operator(cluster, env.runner, binary, data)
    # A FluxInstance the operator gave up on (Stalled) ends the wait at once.
    watch = status.FluxWatch(cluster, env.runner, kubectl, locator=getattr(env, "locator", None),
                             failed=getattr(env, "failed", None), kinds=status.OPERATOR_KINDS)
    env.runner.run(Step([kubectl, *kube_args(cluster), "-n", FLUX_NAMESPACE, "wait",
                         "fluxinstances.fluxcd.controlplane.io/flux", "--for=condition=Ready", "--timeout=600s"],
                        note=f"{TARGET}: the operator reports the FluxInstance Ready", timeout=660),
                   while_waiting=watch.check if env.live else None)
    status.wait_all_ready(env, cluster, READY_BOUND)
    return clone, cluster


def catch_up(env, clone: Path, cluster: Cluster) -> None:
    """After running ahead: main has moved on (the page blocks and the
    promotion push and publish releases). The work branch takes main's
    commits, and the operator's cluster reconciles its sources now rather
    than at their intervals."""
    git(env, clone, "pull", "--quiet", "--no-rebase", "--no-edit", "origin", names.DEFAULT_BRANCH,
        note=f"bring {BRANCH} up to {names.DEFAULT_BRANCH}, which moved on while the operator's cluster was made")
    git(env, clone, "push", "--quiet", "origin", BRANCH, note="push the work branch to the served snapshot")
    flux_reconcile(env, cluster, "source", "oci", "platform", "--namespace", FLUX_NAMESPACE)
    flux_reconcile(env, cluster, "kustomization", "flux-system", "--with-source", "--namespace", FLUX_NAMESPACE)


def finish(env, prepared: tuple[Path, Cluster], ran_ahead: bool) -> None:
    """Compare the operator's cluster with the bootstrapped staging cluster,
    then delete it. After running ahead, it is first caught up, and the
    comparison is repeated until both agree (or ``CATCH_UP_BOUND``): the
    page blocks and the promotion may be changing staging meanwhile, and the
    proof holds once both clusters stand on the same commit and release."""
    clone, cluster = prepared
    kubectl = env.tool("kubectl")
    if ran_ahead:
        catch_up(env, clone, cluster)
    staging = env.cluster(DIRECTORY)
    deadline = time.monotonic() + (CATCH_UP_BOUND if ran_ahead else 0)
    while True:
        ready = status.wait_all_ready(env, cluster, READY_BOUND)
        bootstrapped = status.wait_all_ready(env, staging, READY_BOUND)
        instance = status.get_json(cluster, env.runner, kubectl, "fluxinstances.fluxcd.controlplane.io/flux",
                                   "-n", FLUX_NAMESPACE)
        deployments = status.get_json(cluster, env.runner, kubectl, "deployments", "-n", FLUX_NAMESPACE)
        layers = {c.target: applied(env, c) for c in (cluster, staging)}
        if not env.live:
            break
        problems = compare(ready, bootstrapped, layers[TARGET], layers[DIRECTORY], deployments)
        if not problems:
            break
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{TARGET} (Flux by the Flux Operator from {INSTANCE}, FluxInstance "
                f"{instance.get('status', {}).get('lastAppliedRevision', '?')}) differs from the bootstrapped "
                f"{DIRECTORY} cluster" + (f" {CATCH_UP_BOUND}s after it was caught up" if ran_ahead else "")
                + ":\n  " + "\n  ".join(problems))
        time.sleep(5)
        if ran_ahead:
            catch_up(env, clone, cluster)  # main, or the releases, may have moved again meanwhile
    env.delete_cluster(TARGET)


def applied(env, cluster: Cluster) -> dict[str, str]:
    """name -> lastAppliedRevision of the Kustomizations built from OCI sources."""
    listing = status.get_json(cluster, env.runner, env.tool("kubectl"), "kustomizations.kustomize.toolkit.fluxcd.io",
                              "-n", FLUX_NAMESPACE)
    return {k["metadata"]["name"]: k.get("status", {}).get("lastAppliedRevision", "")
            for k in listing.get("items", []) if k.get("spec", {}).get("sourceRef", {}).get("kind") == "OCIRepository"}


def compare(by_operator, by_bootstrap, operator_layers: dict, bootstrap_layers: dict, deployments: dict) -> list[str]:
    """What differs between the two clusters' Flux objects (empty: nothing)."""
    problems = []
    mine = {(s.kind, s.namespace, s.name) for s in by_operator}
    theirs = {(s.kind, s.namespace, s.name) for s in by_bootstrap}
    for kind, namespace, name in sorted(theirs - mine):
        problems.append(f"{kind} {namespace}/{name} exists after bootstrap but not after the operator")
    for kind, namespace, name in sorted(mine - theirs):
        problems.append(f"{kind} {namespace}/{name} exists after the operator but not after bootstrap")
    problems += [f"not Ready after the operator: {s}" for s in by_operator if not s.ready]
    if not operator_layers:
        problems.append("no Kustomization applies the platform release")
    for name, revision in sorted(operator_layers.items()):
        if revision != bootstrap_layers.get(name):
            problems.append(f"Kustomization {name} applied {revision or 'nothing'}, bootstrap's "
                            f"{bootstrap_layers.get(name) or 'nothing'}")
    args = {}
    for item in deployments.get("items", []):
        containers = item["spec"]["template"]["spec"]["containers"]
        args[item["metadata"]["name"]] = next((c.get("args", []) for c in containers if c.get("name") == "manager"),
                                              [])
    for controller, flags in LOCKDOWN.items():
        missing = [f for f in flags if f not in args.get(controller, [])]
        if missing:
            problems.append(f"{controller} runs without {', '.join(missing)} (the lockdown bootstrap's "
                            "flux-system/kustomization.yaml patches in)")
    return problems
