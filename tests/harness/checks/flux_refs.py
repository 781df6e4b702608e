"""Check: what each cluster's Flux applies can be worked out, and its
``dependsOn`` graph has no cycle.

Over what Flux applies on each cluster (``flux_render``): every Kustomization
``path`` exists and renders (the issues ``flux_render`` found on the way), and
the ``dependsOn`` graph of the Kustomizations (and of the HelmReleases) has
no cycle, in which no member could ever become ready. Whether each
``dependsOn``, ``sourceRef`` or any other reference names an object the
cluster will have is the ``references`` check's business.
"""

from __future__ import annotations

from pathlib import Path

from harness import coverage
from harness.checks import flux_render
from harness.model import Context, Finding, Origin, Outcome

CHECK = "flux-refs"
KINDS_WITH_DEPENDS = ("Kustomization", "HelmRelease")
FLUX_GROUPS = {
    "Kustomization": "kustomize.toolkit.fluxcd.io",
    "HelmRelease": "helm.toolkit.fluxcd.io",
}


def _is_flux(obj: flux_render.Applied, kind: str) -> bool:
    return obj.kind == kind and str(obj.data.get("apiVersion", "")).startswith(FLUX_GROUPS[kind] + "/")


def _cycles(graph: dict[tuple, list[tuple]]) -> list[list[tuple]]:
    """Every elementary cycle found by depth-first search (each reported once)."""
    found: list[list[tuple]] = []
    seen_sets: set[frozenset] = set()
    state: dict[tuple, int] = {}  # 1 on the stack, 2 done
    stack: list[tuple] = []

    def visit(node: tuple) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                key = frozenset(cycle)
                if key not in seen_sets:
                    seen_sets.add(key)
                    found.append(cycle)
            elif state.get(nxt) is None and nxt in graph:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if state.get(node) is None:
            visit(node)
    return found


def check_cluster(render: flux_render.ClusterRender) -> list[Finding]:
    findings: list[Finding] = []
    for issue in render.issues:
        if issue.check == CHECK:
            outcome = Outcome.SKIPPED if issue.skipped else Outcome.FAILED
            # a skip reads the same on every cluster (the report lists it once, with its places)
            message = issue.message if issue.skipped else f"{render.cluster}: {issue.message}"
            findings.append(Finding(CHECK, outcome, issue.where, message))
    for kind in KINDS_WITH_DEPENDS:
        graph: dict[tuple, list[tuple]] = {}
        where: dict[tuple, flux_render.Applied] = {}
        for obj in render.objects:
            if not _is_flux(obj, kind):
                continue
            node = (obj.namespace, obj.name)
            if node in where:
                continue
            where[node] = obj
            graph[node] = []
            for dep in (obj.data.get("spec") or {}).get("dependsOn") or []:
                if not isinstance(dep, dict) or not dep.get("name"):
                    continue
                target = (str(dep.get("namespace") or obj.namespace), str(dep["name"]))
                graph[node].append(target)
        for cycle in _cycles(graph):
            first = where[cycle[0]]
            chain = " -> ".join(f"{ns}/{name}" for ns, name in cycle)
            places = ", ".join(str(where[n].field(["spec", "dependsOn"])) for n in cycle[:-1])
            findings.append(Finding(
                CHECK, Outcome.FAILED, first.field(["spec", "dependsOn"]),
                f"{render.cluster}: dependsOn cycle among {kind}s: {chain} (at {places}); "
                f"none of them can ever become ready: remove one dependency",
            ))
    if not any(f.outcome is Outcome.FAILED for f in findings):
        findings.append(Finding(
            CHECK, Outcome.PASSED, Origin(f"{render.cluster}/flux-system", 1),
            f"{render.cluster}: {len(render.rendered)} Kustomizations, {len(render.objects)} objects; "
            f"no dependsOn cycle",
            covers=coverage.covers_of(obj.source_file for obj in render.objects),
        ))
    return findings


def run(ctx: Context) -> list[Finding]:
    renders = flux_render.render_all(Path(ctx.root))
    if not renders:
        return [Finding(CHECK, Outcome.FAILED, Origin("clusters", 1),
                        "no clusters/<name>/flux-system directory: nothing to check")]
    findings: list[Finding] = []
    for render in renders.values():
        findings += check_cluster(render)
    return findings
