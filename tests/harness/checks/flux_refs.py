"""Check: Flux cross-references hold on every cluster.

Over what Flux applies on each cluster (``flux_render``): every Kustomization
``path`` exists; every ``sourceRef`` (Kustomization, HelmRelease
``chart.spec.sourceRef``) and ``chartRef`` names a source that the same cluster
applies; every ``dependsOn`` names a Kustomization (or HelmRelease) that the
cluster applies; and the ``dependsOn`` graph has no cycle. A
``serviceAccountName`` names a ServiceAccount the cluster applies (or a Flux
controller's own account in flux-system, which bootstrap installs), and an
Alert's ``providerRef`` and named ``eventSources`` exist. A reference without
a namespace means the referring object's namespace, as in Flux.
"""

from __future__ import annotations

from pathlib import Path

from harness import coverage
from harness.checks import flux_render
from harness.model import Context, Finding, Origin, Outcome

CHECK = "flux-refs"
KINDS_WITH_DEPENDS = ("Kustomization", "HelmRelease")
NOTIFICATION_GROUP = "notification.toolkit.fluxcd.io"
CONTROLLER_ACCOUNTS = {"kustomize-controller", "helm-controller"}
FLUX_GROUPS = {
    "Kustomization": "kustomize.toolkit.fluxcd.io",
    "HelmRelease": "helm.toolkit.fluxcd.io",
}


def _is_flux(obj: flux_render.Applied, kind: str) -> bool:
    return obj.kind == kind and str(obj.data.get("apiVersion", "")).startswith(FLUX_GROUPS[kind] + "/")


def _references(obj: flux_render.Applied):
    """(field path, kind, name, namespace) of every source reference."""
    spec = obj.data.get("spec") or {}
    refs = []
    if _is_flux(obj, "Kustomization"):
        refs.append((["spec", "sourceRef"], spec.get("sourceRef")))
    if _is_flux(obj, "HelmRelease"):
        chart = spec.get("chart") or {}
        refs.append((["spec", "chart", "spec", "sourceRef"], (chart.get("spec") or {}).get("sourceRef")))
        refs.append((["spec", "chartRef"], spec.get("chartRef")))
    for path, ref in refs:
        if isinstance(ref, dict) and ref.get("name"):
            yield path, str(ref.get("kind")), str(ref["name"]), str(ref.get("namespace") or obj.namespace)


def _other_references(obj: flux_render.Applied):
    """(field path, kind, name, namespace) of the service account a
    Kustomization or HelmRelease acts as, and of an Alert's Provider and named
    event sources; all of them live in the object's own namespace (with the
    lockdown on, Flux refuses any other)."""
    spec = obj.data.get("spec") or {}
    if (_is_flux(obj, "Kustomization") or _is_flux(obj, "HelmRelease")) and spec.get("serviceAccountName"):
        yield ["spec", "serviceAccountName"], "ServiceAccount", str(spec["serviceAccountName"]), obj.namespace
    if obj.kind == "Alert" and str(obj.data.get("apiVersion", "")).startswith(NOTIFICATION_GROUP + "/"):
        provider = spec.get("providerRef") or {}
        if provider.get("name"):
            yield ["spec", "providerRef"], "Provider", str(provider["name"]), obj.namespace
        for index, source in enumerate(spec.get("eventSources") or []):
            if isinstance(source, dict) and source.get("name") and "*" not in str(source["name"]):
                yield (["spec", "eventSources", index], str(source.get("kind")), str(source["name"]),
                       str(source.get("namespace") or obj.namespace))


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
    present = {(o.kind, o.namespace, o.name) for o in render.objects}
    for obj in render.objects:
        for path, kind, name, namespace in _references(obj):
            if (kind, namespace, name) not in present:
                findings.append(Finding(
                    CHECK, Outcome.FAILED, obj.field(path),
                    f"{render.cluster}: {obj.kind} {obj.namespace}/{obj.name} refers to {kind} "
                    f"{namespace}/{name}, which this cluster does not apply; fix the reference or add the source",
                ))
    for obj in render.objects:
        for path, kind, name, namespace in _other_references(obj):
            if (kind, namespace, name) in present:
                continue
            if kind == "ServiceAccount" and namespace == "flux-system" and name in CONTROLLER_ACCOUNTS:
                continue  # the controllers' own accounts, from gotk-components.yaml
            findings.append(Finding(
                CHECK, Outcome.FAILED, obj.field(path),
                f"{render.cluster}: {obj.kind} {obj.namespace}/{obj.name} refers to {kind} {namespace}/{name}, "
                f"which this cluster does not apply; add it to the tree (service accounts: "
                f"platform/baseline/reconcilers.yaml) or fix the reference",
            ))
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
            for index, dep in enumerate((obj.data.get("spec") or {}).get("dependsOn") or []):
                if not isinstance(dep, dict) or not dep.get("name"):
                    continue
                target = (str(dep.get("namespace") or obj.namespace), str(dep["name"]))
                graph[node].append(target)
        for node, targets in graph.items():
            obj = where[node]
            for index, target in enumerate(targets):
                if target not in graph:
                    findings.append(Finding(
                        CHECK, Outcome.FAILED, obj.field(["spec", "dependsOn", index]),
                        f"{render.cluster}: {kind} {node[0]}/{node[1]} depends on {kind} "
                        f"{target[0]}/{target[1]}, which this cluster does not apply",
                    ))
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
            f"{render.cluster}: {len(render.rendered)} Kustomizations, {len(render.objects)} objects; references hold",
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
