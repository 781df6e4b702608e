"""Proof 3: the sandbox procedure the pages describe, with the tree's scripts:
clone development into a sandbox directory on a work branch, bootstrap a
sandbox cluster from it, make a change, clean the cluster down (no dangling
finalisers), and return the change to development."""

from __future__ import annotations

import json
from pathlib import Path

from .. import names, status
from ..plan import Step
from ..providers import kube_args
from . import READY_BOUND, RECONCILE_BOUND, doc_blocks, flux_reconcile, git, workloads

SANDBOX_DIR = "sandbox-a"
# The walkthrough's branch (docs/example/kind.md, Create a sandbox): what its blocks print names it.
BRANCH = "PLAT-1-try-a-sandbox"
MARKER = "docs-test-change"

CHANGE = f"""apiVersion: v1
kind: ConfigMap
metadata:
  name: {MARKER}
  namespace: flux-system
data:
  made-by: the docs-test sandbox proof
"""


def script(env, clone: Path, *argv: str, cluster=None, note: str = "") -> None:
    env.runner.run(Step(
        ["bash", *argv], note=note, cwd=str(clone),
        env={"PATH": env.tool_path(), "KUBECTL": env.tool("kubectl"), "FLUX": env.tool("flux"),
             **({"KUBECONFIG": cluster.kubeconfig} if cluster else {})},
        context=cluster.context if cluster else None,
        kubeconfig=cluster.kubeconfig if cluster else None,
        timeout=READY_BOUND,
    ))


def add_change(clone: Path) -> None:
    folder = clone / "clusters" / SANDBOX_DIR
    (folder / f"{MARKER}.yaml").write_text(CHANGE, encoding="utf-8")
    kustomization = folder / "kustomization.yaml"
    text = kustomization.read_text(encoding="utf-8")
    if "resources:" not in text:
        raise AssertionError(f"clusters/{SANDBOX_DIR}/kustomization.yaml (cloned from clusters/development/"
                             "kustomization.yaml) has no resources: list to add the change to")
    kustomization.write_text(text.replace("resources:\n", f"resources:\n  - {MARKER}.yaml\n", 1), encoding="utf-8")


def dangling(listings: dict[str, dict]) -> list[str]:
    """Objects stuck in deletion (a deletionTimestamp and finalizers left)."""
    stuck = []
    for kind, listing in listings.items():
        for item in listing.get("items", []):
            meta = item.get("metadata", {})
            if meta.get("deletionTimestamp") and meta.get("finalizers"):
                stuck.append(f"{kind} {meta.get('namespace', '')}/{meta['name']} (finalizers: "
                             f"{', '.join(meta['finalizers'])})")
    return stuck


def run(env) -> None:
    """The whole procedure in one go (the plan prints it this way too)."""
    start(env)
    finish(env)


def prepare(env):
    """The sandbox cluster, made the way the pages make it: development
    cloned into clusters/sandbox-a on a work branch, a cluster bootstrapped
    from there. Once per run; returns (clone, cluster)."""
    return env.once("sandbox", lambda: _prepare(env))


def prepare_ahead(env) -> None:
    """Start making the sandbox cluster in the background."""
    env.ahead("sandbox", lambda: _prepare(env))


# The proof's two halves, as proofs run ahead (``Provider.proofs_ahead``).
FOLLOWS = "sandbox-follows"
CLEANED = "sandbox-cleaned-down"


def start_ahead(env) -> None:
    """Prove in the background, as soon as the sandbox is made, that it
    follows its work branch; the page blocks on the sandbox come after it
    (``for_pages``)."""
    env.ahead_proof(FOLLOWS, lambda: start(env))


def finish_ahead(env) -> None:
    """Check the clean-down and return the change in the background, once
    the page blocks are done with the sandbox (their last one cleans it
    down) and the first half is over."""
    env.ahead_proof(CLEANED, lambda: finish(env), after=(FOLLOWS, env.stage(doc_blocks.done_with(names.SANDBOX))))


def follows(env) -> None:
    """The first half: its result if ``start_ahead`` started it, or a run now."""
    env.proof_result(FOLLOWS, lambda: start(env))


def cleaned(env) -> None:
    """The second half: its result if ``finish_ahead`` started it, or a run now."""
    env.proof_result(CLEANED, lambda: finish(env))


def for_pages(env):
    """The sandbox cluster for the page blocks: made, and done with the
    first half of the proof when that runs ahead (in the reader's order, the
    pages' blocks come after it)."""
    made = prepare(env)[1]
    env.proof_over(FOLLOWS)
    return made


def _prepare(env):
    clone = env.checkout("sandbox")
    git(env, clone, "switch", "--quiet", "--create", BRANCH, note="a work branch for the sandbox")
    script(env, clone, "snippets/sandbox-clone.sh", "development", SANDBOX_DIR, "--branch", BRANCH,
           note="clone development into the sandbox directory (snippets/sandbox-clone.sh)")
    git(env, clone, "add", "--all", f"clusters/{SANDBOX_DIR}")
    git(env, clone, "commit", "--quiet", "--message", f"{SANDBOX_DIR}: clone of development")
    git(env, clone, "push", "--quiet", "origin", BRANCH, note="push the work branch to the served snapshot")

    sandbox = env.cluster(names.SANDBOX, path=f"clusters/{SANDBOX_DIR}", branch=BRANCH)
    status.wait_all_ready(env, sandbox, READY_BOUND)
    return clone, sandbox


def start(env) -> None:
    """The sandbox follows its work branch: a change pushed there reaches it."""
    clone, sandbox = prepare(env)

    # The change: one more object in the sandbox directory.
    git(env, clone, "pull", "--quiet", "origin", BRANCH, note="fetch bootstrap's commit")
    env.runner.call(Step(["edit", f"clusters/{SANDBOX_DIR}", f"add {MARKER}.yaml to the kustomization"],
                         note="make a change in the sandbox", in_process=True), lambda: add_change(clone))
    git(env, clone, "add", "--all", f"clusters/{SANDBOX_DIR}")
    git(env, clone, "commit", "--quiet", "--message", f"{SANDBOX_DIR}: a change to try")
    git(env, clone, "push", "--quiet", "origin", BRANCH)
    flux_reconcile(env, sandbox, "kustomization", "flux-system", "--with-source")
    made = env.runner.run(Step([env.tool("kubectl"), *kube_args(sandbox), "get", "configmap", MARKER,
                                "-n", "flux-system", "-o", "name"], timeout=60), check=False)
    if env.live:
        assert made.returncode == 0, (
            f"sandbox: the change (ConfigMap flux-system/{MARKER} in clusters/{SANDBOX_DIR}) was not applied "
            f"after a reconcile: {made.stderr.strip()}"
        )
    # The workloads the clean-down must delete: there are some to delete.
    running = workloads.workload_pods(env, sandbox)
    if env.live:
        assert running, "sandbox: no workload pod runs before the clean-down; the clean-down check would prove nothing"


def cleaned_down(env, sandbox) -> bool:
    """Whether the clean-down ran already (it suspends the root Kustomization
    first): the pages' own clean-down block runs it on the same cluster."""
    proc = env.runner.run(Step([env.tool("kubectl"), *kube_args(sandbox), "get",
                                "kustomizations.kustomize.toolkit.fluxcd.io/flux-system", "-n", "flux-system",
                                "-o", "jsonpath={.spec.suspend}"], timeout=60), check=False)
    return env.live and proc.stdout.strip() == "true"


def finish(env) -> None:
    """The clean-down (unless the pages' block ran it) leaves nothing stuck in
    deletion, and the change returns to development."""
    clone, sandbox = prepare(env)
    if not cleaned_down(env, sandbox):
        script(env, clone, "snippets/sandbox-clean-down.sh", "--context", sandbox.context, cluster=sandbox,
               note="clean the sandbox cluster down (snippets/sandbox-clean-down.sh)")
    kinds = ("namespaces", "kustomizations.kustomize.toolkit.fluxcd.io", "helmreleases.helm.toolkit.fluxcd.io",
             "persistentvolumeclaims", "persistentvolumes")
    listings = {}
    for kind in kinds:
        proc = env.runner.run(Step([env.tool("kubectl"), *kube_args(sandbox), "get", kind, "--all-namespaces",
                                    "-o", "json"], note="look for objects stuck in deletion", timeout=60))
        listings[kind] = json.loads(proc.stdout) if env.live else {}
    workloads.wait_workloads_gone(env, sandbox)
    if env.live:
        stuck = dangling(listings)
        assert not stuck, "sandbox clean-down left objects stuck in deletion:\n  " + "\n  ".join(stuck)
        left = [s for s in status.states({"items": listings[kinds[1]]["items"] + listings[kinds[2]]["items"]})
                if not (s.kind == "Kustomization" and s.name == "flux-system")]
        assert not left, "sandbox clean-down left Flux objects behind:\n  " + "\n  ".join(map(str, left))

    script(env, clone, "snippets/sandbox-return.sh", SANDBOX_DIR, "development",
           note="return the change to development (snippets/sandbox-return.sh)")
    if env.live:
        assert not (clone / "clusters" / SANDBOX_DIR).exists(), \
            f"snippets/sandbox-return.sh left clusters/{SANDBOX_DIR} behind"
        assert (clone / "clusters" / "development" / f"{MARKER}.yaml").is_file(), \
            f"snippets/sandbox-return.sh did not bring clusters/{SANDBOX_DIR}/{MARKER}.yaml back to development"
    git(env, clone, "add", "--all", "clusters")
    git(env, clone, "commit", "--quiet", "--message", f"development: return {SANDBOX_DIR}")
    git(env, clone, "push", "--quiet", "origin", BRANCH)
    # Nothing after this proof uses the sandbox: its memory goes back to the run.
    env.delete_cluster(names.SANDBOX)
