"""Check: every reference resolves, on every cluster.

Over what each cluster's Flux applies (``flux_render``) and what the charts
of its HelmReleases render (``helm_charts``): every field that names another
object (the table in ``tests/harness/schemas/references.yaml``, read by
``reference_table``) must name an object the cluster will have
(``cluster_inventory``: the tree, bootstrap, the charts, the procedures in
``snippets/``, Kubernetes itself, and what controllers make from those).

The controllers' flags are the ones the cluster runs them with
(``flux_bootstrap``: the tree's patches of the bootstrap components):

- with ``--no-cross-namespace-refs=true`` a controller does not reach
  another namespace through the fields the table marks ``lockdown`` (a
  Kustomization fails, an Alert gets no events), whether or not the object
  exists there;
- with ``--default-service-account=NAME`` a Kustomization or HelmRelease
  that names no service account acts as ``NAME`` of its own namespace, a
  reference like any other;
- a flag that names an object (``--sops-age-secret``) is a reference too.

An optional reference (``optional: true``) to an object the cluster never
has is what Flux and Kubernetes accept: it is counted, not failed. A
reference that none of the sources resolves fails at the tree file line of
its field (the page line that shows it is added by the report), saying what
is missing and where it could come from; when a source could not be read
(a tool missing), it is skipped with the reason instead.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from harness import coverage
from harness.checks import cluster_inventory, flux_render, helm_charts, procedures, reference_table
from harness.model import Context, Finding, Origin, Outcome

CHECK = "references"
LOCKDOWN_FLAG = "no-cross-namespace-refs"
NOWHERE = "not in the tree, from bootstrap, a chart the cluster installs, a procedure in snippets/ or Kubernetes itself"


@dataclass(frozen=True)
class Referrer:
    """An object whose references are checked: its data, how to name it, and
    where each of its fields is (a tree line)."""

    data: dict
    shown: str  # "Kustomization flux-system/apps"
    locate: object  # path -> Origin
    context: str = ""  # for a chart's object: which release and template
    # For a chart's object: the namespace its release installs into, which
    # the HelmRelease's own references already name (not repeated per object).
    release_namespace: str | None = None


@dataclass(frozen=True)
class Result:
    where: Origin
    message: str
    outcome: Outcome


def _show(group: str | None, kind: str, namespace: str | None, name: str) -> str:
    return f"{kind} {namespace + '/' if namespace else ''}{name}"


def _sources(sources: list[cluster_inventory.Source]) -> str:
    return "; ".join(dict.fromkeys(s.where for s in sources))


def _hint(inv: cluster_inventory.Inventory, ref: reference_table.Reference, namespace: str | None,
          name: str, others: dict[str, cluster_inventory.Inventory]) -> str:
    hints = []
    if namespace is not None:
        for other_ns, sources in inv.elsewhere(ref.group, ref.kind, name):
            if other_ns == namespace:
                continue
            if ref.entry.namespace_from is None:
                how = "always names one in the referring object's namespace"
            elif ref.names_namespace:
                how = f"names the namespace {namespace}"
            else:
                how = "names no namespace, which means the referring object's"
            hints.append(f"{ref.kind} {other_ns}/{name} exists ({_sources(sources)}), but the field {how}.")
            break
    for close, sources in inv.similar(ref.group, ref.kind, namespace, name):
        hints.append(f"Did you mean {_show(ref.group, ref.kind, namespace, close)} ({_sources(sources)})?")
        break
    having = [c.removeprefix("clusters/") for c, other in others.items()
              if other is not inv and other.find(ref.group, ref.kind, namespace, name)]
    if len(having) == 1:
        hints.append(f"The cluster {having[0]} has it.")
    elif having:
        hints.append(f"The clusters {', '.join(having)} have it.")
    return " ".join(hints)


def _advice(kind: str) -> str:
    if kind == "Secret":
        return ("Make it in the procedure that prepares the cluster (a script in snippets/, as "
                "snippets/cluster-vars.sh makes the release key's Secret; never commit it in plain text), "
                "or fix the name.")
    return "Add it to the tree (or to a procedure in snippets/ that prepares the cluster), or fix the name."


def resolve(inv: cluster_inventory.Inventory, referrer: Referrer,
            others: dict[str, cluster_inventory.Inventory], stats: Counter) -> list[Result]:
    """Every reference of ``referrer`` against what the cluster will have."""
    results = []
    group = reference_table.group_of(referrer.data.get("apiVersion"))
    cluster_scoped = inv.cluster_scoped(group, str(referrer.data.get("kind")))
    for ref in reference_table.references_of(referrer.data):
        entry = ref.entry
        if entry.field == ("metadata", "namespace") and (cluster_scoped or ref.name == referrer.release_namespace):
            continue  # the API server ignores it, or the HelmRelease's own reference names it
        controller = entry.controller
        flags = inv.flags.get(controller or "", {})
        name = ref.name
        implicit = ""
        if name is None:  # the field is absent: the controller's flag names the object
            setting = flags.get(entry.default_flag or "")
            if setting is None or not setting.value:
                continue
            name = setting.value
            implicit = (f"names no {entry.shown}, so {controller} uses --{entry.default_flag}={name} "
                        f"({setting.where}): ")
        namespace = inv.namespace_for(ref.group, ref.kind, ref.namespace)
        target = _show(ref.group, ref.kind, namespace, name)
        own_namespace = str((referrer.data.get("metadata") or {}).get("namespace") or "default")
        lockdown = flags.get(LOCKDOWN_FLAG)
        if (entry.lockdown and namespace is not None and namespace != own_namespace and lockdown is not None
                and lockdown.value == "true"):
            stats["refused"] += 1
            results.append(Result(referrer.locate(list(ref.path)), (
                f"{referrer.shown}{referrer.context}: {entry.shown} names {target}, in another namespace, and "
                f"{controller} runs with --{LOCKDOWN_FLAG}=true ({lockdown.where}), which keeps it from reaching "
                f"objects in another namespace. Keep the {ref.kind} in {own_namespace}, or the "
                f"{referrer.shown.split()[0]} in {namespace}."),
                Outcome.FAILED))
            continue
        sources = inv.find(ref.group, ref.kind, namespace, name)
        if sources:
            stats[sources[0].what] += 1
            continue
        if ref.optional:
            stats["optional, absent"] += 1
            continue
        where = referrer.locate(list(ref.path))
        unknown = inv.unknown_for(namespace)
        if unknown:
            stats["not known"] += 1
            results.append(Result(where, f"cannot tell whether {referrer.shown} finds {target}: "
                                         f"{'; '.join(unknown)}", Outcome.SKIPPED))
            continue
        hint = _hint(inv, ref, namespace, name, others)
        what = implicit or f"{entry.shown} names "
        stats["missing"] += 1
        results.append(Result(where, (
            f"{referrer.shown}{referrer.context}: {what}{target}, which the cluster never has ({NOWHERE})."
            + (f" {hint}" if hint else "") + f" {_advice(ref.kind)}"), Outcome.FAILED))
    return results


def _flag_references(inv: cluster_inventory.Inventory, cluster: str, stats: Counter) -> list[Result]:
    """Controller flags that name an object in the controllers' namespace."""
    results = []
    for flag in reference_table.load().controller_flags:
        setting = inv.flags.get(flag.controller, {}).get(flag.flag)
        if setting is None or not setting.value:
            continue
        namespace = inv.controllers_namespace
        if inv.find(flag.group, flag.kind, namespace, setting.value):
            stats["flags"] += 1
            continue
        path, _, line = setting.where.rpartition(":")
        where = Origin(path, int(line)) if line.isdigit() else Origin(f"{cluster}/flux-system/kustomization.yaml", 1)
        stats["missing"] += 1
        results.append(Result(where, (
            f"{flag.controller} runs with --{flag.flag}={setting.value}, which names "
            f"{flag.kind} {namespace}/{setting.value}, and the cluster never has it ({NOWHERE}). "
            f"{_advice(flag.kind)}"), Outcome.FAILED))
    return results


def _tree_referrers(render: flux_render.ClusterRender) -> list[Referrer]:
    out = []
    for obj in render.objects:
        if obj.by == cluster_inventory.BOOTSTRAP:
            continue  # the same objects again, as the flux-system Kustomization applies them
        meta = obj.data.get("metadata") if isinstance(obj.data.get("metadata"), dict) else {}
        namespace = meta.get("namespace")
        shown = f"{obj.kind} {namespace + '/' if namespace else ''}{obj.name}"
        out.append(Referrer(obj.data, shown, obj.field))
    return out


def _chart_referrers(inv: cluster_inventory.Inventory, charts: helm_charts.ChartRender) -> list[Referrer]:
    """The objects the charts render, each in the release's namespace
    unless its kind has none."""
    out = []
    for obj in charts.objects:
        data, shown = obj.data, obj.shown
        if inv.cluster_scoped(reference_table.group_of(data.get("apiVersion")), str(data.get("kind"))):
            data = {**data, "metadata": {k: v for k, v in data["metadata"].items() if k != "namespace"}}
            shown = f"{data.get('kind')} {data['metadata'].get('name')}"
        out.append(Referrer(data, shown, obj.locate, obj.context, obj.release_namespace))
    return out


def check_clusters(root: Path, renders: dict[str, flux_render.ClusterRender], blocks=()) -> list[Finding]:
    charts = {cluster: helm_charts.render(root, render) for cluster, render in renders.items()}
    page_made = procedures.from_cluster_blocks(blocks)
    inventories = {}
    for cluster, render in renders.items():
        chart_objects = [(o.data, o.source) for o in charts[cluster].objects]
        inventories[cluster] = cluster_inventory.build(root, render, chart_objects, charts[cluster].unknown,
                                                       page_made.get(cluster.removeprefix("clusters/")))
    # The same finding on several clusters is reported once, naming them.
    grouped: dict[tuple, list[str]] = defaultdict(list)
    totals: dict[str, Counter] = {}
    failed: set[str] = set()
    for cluster, render in renders.items():
        inv, stats = inventories[cluster], Counter()
        results: list[Result] = []
        for where, message in charts[cluster].failures:
            results.append(Result(where, message, Outcome.FAILED))
        referrers = _tree_referrers(render) + _chart_referrers(inv, charts[cluster])
        for referrer in referrers:
            results += resolve(inv, referrer, inventories, stats)
        results += _flag_references(inv, cluster, stats)
        for why, _namespace, line in inv.unknown:
            results.append(Result(line, f"not all the cluster will have is known: {why}", Outcome.SKIPPED))
        totals[cluster] = stats
        for result in results:
            grouped[(result.where, result.message, result.outcome)].append(cluster)
            if result.outcome is Outcome.FAILED:
                failed.add(cluster)
    findings = []
    for (where, message, outcome), clusters in grouped.items():
        names = ", ".join(c.removeprefix("clusters/") for c in clusters)
        findings.append(Finding(CHECK, outcome, where, f"{names}: {message}"))
    for cluster, stats in totals.items():
        if cluster in failed:
            continue
        counted = ", ".join(f"{n} {what}" for what, n in sorted(stats.items()))
        findings.append(Finding(CHECK, Outcome.PASSED, Origin(f"{cluster}/flux-system", 1),
                                f"{cluster.removeprefix('clusters/')}: references checked ({counted})",
                                covers=coverage.covers_of(obj.source_file for obj in renders[cluster].objects)))
    return findings


def run(ctx: Context) -> list[Finding]:
    root = Path(ctx.root).resolve()
    renders = flux_render.render_all(root)
    if not renders:
        return [Finding(CHECK, Outcome.FAILED, Origin("clusters", 1),
                        "no clusters/<name>/flux-system directory: nothing to check")]
    blocks = ctx.blocks
    if ctx.only_page:
        # What the other pages' cluster blocks make counts too.
        from harness import extract

        blocks = extract.collect(root)
    return check_clusters(root, renders, blocks)
