"""Check: no object is applied by two Flux Kustomizations on one cluster.

Two Kustomizations that apply the same object (same API group, kind,
namespace and name) take turns overwriting it with their own version, and
when one of them stops applying it (a file moved, the Kustomization deleted)
its pruning deletes the object the other still wants. What each Kustomization
applies comes from ``flux_render``; every object found twice is reported once
per cluster, at the first place, naming both Kustomizations and both tree
file lines.

Objects of ``clusters/<name>/flux-system/`` appear twice in the render by
design: bootstrap applies them, and the ``flux-system`` Kustomization, which
reconciles the cluster's directory, takes them over. Those pairs are not
reported.
"""

from __future__ import annotations

from pathlib import Path

from harness.checks import flux_render
from harness.model import Context, Finding, Origin, Outcome

CHECK = "applied-twice"
BOOTSTRAP = "bootstrap"


def identity(obj: flux_render.Applied) -> tuple[str, str, str, str]:
    group = str(obj.data.get("apiVersion", "")).rpartition("/")[0]
    return group, obj.kind, obj.namespace, obj.name


def check_cluster(render: flux_render.ClusterRender) -> list[Finding]:
    first: dict[tuple, flux_render.Applied] = {}
    reported: set[tuple] = set()
    findings: list[Finding] = []
    for obj in render.objects:
        if obj.by == BOOTSTRAP:
            continue
        key = identity(obj)
        seen = first.get(key)
        if seen is None:
            first[key] = obj
            continue
        if seen.by == obj.by or key in reported:
            continue
        reported.add(key)
        group, kind, namespace, name = key
        what = f"{kind} {namespace}/{name}" + (f" ({group})" if group else "")
        findings.append(Finding(
            CHECK, Outcome.FAILED, seen.origin,
            f"{render.cluster}: {what} is applied by Kustomization {seen.by} (from {seen.origin}) and by "
            f"Kustomization {obj.by} (from {obj.origin}): they overwrite each other, and pruning by either deletes "
            f"it; keep the object in one Kustomization's path",
        ))
    if not findings:
        findings.append(Finding(CHECK, Outcome.PASSED, Origin(f"{render.cluster}/flux-system", 1),
                                f"{render.cluster}: every object has one Kustomization"))
    return findings


def run(ctx: Context) -> list[Finding]:
    findings: list[Finding] = []
    for render in flux_render.render_all(Path(ctx.root)).values():
        findings += check_cluster(render)
    return findings
