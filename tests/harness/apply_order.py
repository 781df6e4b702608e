"""The order in which a cluster's objects reach the API server, worked out
offline: the plan the API-server check (``harness.checks.api_server``) sends.

A cluster starts empty. ``flux bootstrap`` applies ``flux-system/`` as
committed, with ``gotk-components.yaml`` written by ``flux install --export``
of the pinned Flux (the placeholder in the tree holds nothing): the
``flux-system`` namespace, Flux's CRDs and controllers, and the root source
and Kustomization, as ``flux_bootstrap`` works them out (a directory that
bootstrap could not apply is a failure of the plan). Then each Flux Kustomization applies what ``flux_render``
says it renders, rendered and substituted as Flux does it. A Kustomization
starts only after the one that applies it (its parent) and after every
Kustomization it names in ``dependsOn``; among those that may run at the same
time, the plan keeps the order in which the render found them. Within one
Kustomization, as kustomize-controller does it, CRDs and Namespaces are
applied first; then admission policies, so that they check the rest; then
everything else.

What is really created, and what is only a dry run: an object is created for
real when later objects need it to exist (Namespaces, CRDs, admission
policies and their bindings), and when a later step applies the same object
again (bootstrap's objects, which the root Kustomization takes over), so that
the later apply is an update, checked against immutable fields and CEL
transition rules. Everything else is sent with ``dryRun=All``: admitted,
validated and defaulted exactly as a real apply, and not stored.

Charts: a HelmRelease's chart may install CRDs. The plan installs them, as
``helm_charts`` renders the chart with the release's values (from the
chart's sources, as the cluster tier packages it: ``versions.yaml``
``charts:``), right after the Kustomization that applies the release, when that Kustomization
waits for the release (``wait: true``, or a health check naming it). A
Kustomization that does not wait lets its dependants start before the chart
is installed.

The order model's guarantee, for the objects of a Kustomization K: a
namespace or CRD exists when K's objects are applied only if K itself, an
ancestor of K (which applies its CRDs and Namespaces before K exists) or a
Kustomization K depends on (directly or through its ancestors' dependsOn)
created it; a chart's CRDs only through dependsOn. ``guaranteed`` answers
that; the plan's linear order alone would make everything earlier visible.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from harness.checks import flux_bootstrap, flux_render, helm_charts, yaml_docs
from harness.model import Origin

BOOTSTRAP = "bootstrap"
COMPONENTS = flux_bootstrap.COMPONENTS
CRD = ("apiextensions.k8s.io", "CustomResourceDefinition")
NAMESPACE = ("", "Namespace")
STAGE_ONE = {CRD, NAMESPACE}
POLICIES = {("admissionregistration.k8s.io", kind) for kind in (
    "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
    "MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding")}
HELM_GROUP = "helm.toolkit.fluxcd.io"


def group_of(data: dict) -> str:
    api = str(data.get("apiVersion", ""))
    return api.rpartition("/")[0]


@dataclass
class Item:
    """One object of a step, as sent, with where it comes from."""

    data: dict
    origin: Origin
    applied: flux_render.Applied | None  # for the line of a field
    stage: int  # 1: CRDs and Namespaces, 2: admission policies, 3: the rest
    real: bool = False  # created for real (not a dry run)
    note: str = ""  # said after the origin (e.g. what writes the file)

    @property
    def group(self) -> str:
        return group_of(self.data)

    @property
    def kind(self) -> str:
        return str(self.data.get("kind"))

    @property
    def name(self) -> str:
        return str((self.data.get("metadata") or {}).get("name"))

    @property
    def namespace(self) -> str | None:
        ns = (self.data.get("metadata") or {}).get("namespace")
        return str(ns) if ns else None

    @property
    def identity(self) -> tuple[str, str, str, str]:
        return self.group, self.kind, self.namespace or "", self.name

    def describe(self) -> str:
        return f"{self.kind} {self.namespace + '/' if self.namespace else ''}{self.name}"

    def field(self, path: list) -> Origin:
        if self.applied is None:
            return self.origin
        return self.applied.field(path)


@dataclass
class ChartCRDs:
    """The CRDs a HelmRelease's chart installs."""

    release: Item
    crds: list[dict]
    source: str  # the chart and its sources, for messages
    waited: bool  # the Kustomization that applies the release waits for it
    skipped: str = ""  # why the CRDs are unknown (then ``crds`` is empty)


@dataclass
class Step:
    name: str  # "bootstrap" or the Kustomization's namespace/name
    kustomization: Item | None
    items: list[Item] = field(default_factory=list)
    charts: list[ChartCRDs] = field(default_factory=list)
    parent: str | None = None
    depends_on: list[str] = field(default_factory=list)


@dataclass
class Plan:
    cluster: str
    steps: list[Step]
    skipped: list[tuple[Origin, str]] = field(default_factory=list)  # what cannot be planned, and why
    failures: list[tuple[Origin, str]] = field(default_factory=list)  # what bootstrap itself would fail on
    ancestors: dict[str, set[str]] = field(default_factory=dict)
    depends: dict[str, set[str]] = field(default_factory=dict)  # dependsOn closure

    def guaranteed(self, step: str) -> tuple[set[str], set[str]]:
        """(steps whose Namespaces and CRDs exist when ``step`` applies,
        steps whose waited charts' CRDs exist then)."""
        depends = self.depends.get(step, set())
        before = {BOOTSTRAP, step} | self.ancestors.get(step, set()) | depends
        for dep in depends:
            before |= self.ancestors.get(dep, set())
        return before, depends

    def operations(self) -> list[dict]:
        """What is sent, in order: the cache key of the answers."""
        out = []
        for step in self.steps:
            for item in sorted_items(step):
                out.append({"step": step.name, "real": item.real, "object": item.data})
            for chart in step.charts:
                if chart.waited:
                    out.extend({"step": step.name, "real": True, "chart": chart.source, "object": crd}
                               for crd in chart.crds)
        return out


def sorted_items(step: Step) -> list[Item]:
    return sorted(step.items, key=lambda item: item.stage)


# -- bootstrap ------------------------------------------------------------------------


def _stage(data: dict) -> int:
    key = (group_of(data), str(data.get("kind")))
    return 1 if key in STAGE_ONE else 2 if key in POLICIES else 3


def _bootstrap(root: Path, cluster: str, plan: Plan) -> tuple[Step, list[Item]] | None:
    """Bootstrap's step, from what ``flux_bootstrap`` says it applies, and
    the objects of ``flux install --export`` in it (the Kustomization that
    reconciles flux-system/ applies them again)."""
    boot_dir = f"{cluster}/flux-system"
    boot = flux_bootstrap.for_cluster(root, cluster)
    if boot.failure is not None:
        plan.failures.append(boot.failure)
        return None
    if boot.reason is not None:
        plan.skipped.append((Origin(f"{boot_dir}/kustomization.yaml", 1), f"cannot plan bootstrap: {boot.reason}"))
        return None
    step = Step(BOOTSTRAP, None)
    from_components = []
    index = yaml_docs.by_ident(root)
    for data, ours in zip(boot.objects, boot.from_components):
        if ours:
            item = Item(data, Origin(f"{boot_dir}/{COMPONENTS}", 1), None, _stage(data),
                        note="as `flux install --export` writes it at bootstrap")
            from_components.append(item)
        else:
            source = yaml_docs.source_of(root, data, boot_dir, index)
            if source is not None:
                tree_file, source_doc = source
                applied = flux_render.Applied(data, tree_file.origin(source_doc.line), source_doc,
                                              tree_file.path, BOOTSTRAP)
                item = Item(data, applied.origin, applied, _stage(data))
            else:
                item = Item(data, Origin(f"{boot_dir}/kustomization.yaml", 1), None, _stage(data))
        step.items.append(item)
    return step, from_components


# -- charts ----------------------------------------------------------------------------


def _chart_crds(release: Item, chart: helm_charts.ReleaseChart | None, waited: bool) -> ChartCRDs | None:
    """The CRDs ``release``'s chart installs (``helm_charts`` renders it),
    or why they are not known; None for a chart that installs none."""
    if chart is None:
        return None
    if chart.unknown:
        return ChartCRDs(release, [], chart.chart or "its chart", waited, skipped=chart.unknown)
    crds = chart.crds()
    return ChartCRDs(release, crds, chart.chart, waited) if crds else None


# -- the plan ----------------------------------------------------------------------------


def _waits_for(ks: dict, release: Item) -> bool:
    spec = ks.get("spec") or {}
    if spec.get("wait") is True:
        return True
    for check in spec.get("healthChecks") or []:
        if (isinstance(check, dict) and check.get("kind") == "HelmRelease" and check.get("name") == release.name
                and str(check.get("namespace") or "") in ("", release.namespace or "")):
            return True
    return False


def plan(root: Path, render: flux_render.ClusterRender) -> Plan:
    root = Path(root)
    result = Plan(render.cluster, [])
    boot = _bootstrap(root, render.cluster, result)
    if boot is None:
        return result
    bootstrap, components = boot
    steps: dict[str, Step] = {BOOTSTRAP: bootstrap}
    found_order: list[str] = []
    charts = {(c.release.namespace, c.release.name): c for c in helm_charts.render(root, render).releases}
    for obj in render.objects:
        if obj.by == BOOTSTRAP:
            continue  # bootstrap's own step is built from the real components above
        step = steps.get(obj.by)
        if step is None:
            step = steps[obj.by] = Step(obj.by, None)
            found_order.append(obj.by)
        if obj.source_file and obj.source_file.startswith(f"{render.cluster}/flux-system/") and not any(
                i.note for i in step.items):
            # This Kustomization reconciles flux-system/: it applies the
            # components bootstrap committed there, too.
            step.items.extend(Item(c.data, c.origin, None, c.stage, note=c.note) for c in components)
        step.items.append(Item(obj.data, obj.origin, obj, _stage(obj.data)))
    # Kustomizations: who applies them, what they depend on.
    for name, step in steps.items():
        for item in step.items:
            if item.kind == "Kustomization" and item.group == flux_render.KUSTOMIZE_GROUP:
                key = f"{item.namespace or 'default'}/{item.name}"
                if key in steps and steps[key].kustomization is None and key != name:
                    target = steps[key]
                    target.kustomization, target.parent = item, name
                    for dep in (item.data.get("spec") or {}).get("dependsOn") or []:
                        if isinstance(dep, dict) and dep.get("name"):
                            target.depends_on.append(f"{dep.get('namespace') or item.namespace or 'default'}/{dep['name']}")
    for step in steps.values():
        if step.kustomization is None:
            continue
        for item in step.items:
            if item.kind == "HelmRelease" and item.group == HELM_GROUP:
                chart = _chart_crds(item, charts.get((item.namespace or "default", item.name)),
                                    _waits_for(step.kustomization.data, item))
                if chart is not None:
                    step.charts.append(chart)
    result.steps = _ordered(steps, found_order)
    _mark_real(result.steps)
    _closures(result, steps)
    return result


def _ordered(steps: dict[str, Step], found_order: list[str]) -> list[Step]:
    """Bootstrap, then every Kustomization after its parent and its
    dependencies (in the render's order where both may come first)."""
    done: list[str] = [BOOTSTRAP]
    waiting = [name for name in found_order if name in steps]
    while waiting:
        ready = next((name for name in waiting if (steps[name].parent in (None, *done)) and all(
            dep in done or dep not in steps for dep in steps[name].depends_on)), None)
        if ready is None:  # a dependsOn cycle (flux-refs reports it): keep the render's order
            ready = waiting[0]
        waiting.remove(ready)
        done.append(ready)
    return [steps[name] for name in done]


def _mark_real(steps: list[Step]) -> None:
    later: set[tuple] = set()
    for step in reversed(steps):
        for item in reversed(sorted_items(step)):
            if item.stage < 3 or item.identity in later:
                item.real = True
            later.add(item.identity)


def _closures(plan: Plan, steps: dict[str, Step]) -> None:
    def ancestors(name: str, seen: frozenset = frozenset()) -> set[str]:
        parent = steps[name].parent if name in steps else None
        if parent is None or parent in seen:
            return set()
        return {parent} | ancestors(parent, seen | {name})

    def depends(name: str, seen: frozenset = frozenset()) -> set[str]:
        if name not in steps or name in seen:
            return set()
        out: set[str] = set()
        for dep in steps[name].depends_on:
            if dep in steps:
                out |= {dep} | depends(dep, seen | {name})
        for parent in ancestors(name):
            out |= depends(parent, seen | {name})
        return out

    for name in steps:
        plan.ancestors[name] = ancestors(name)
        plan.depends[name] = depends(name)


def canonical(operations: list[dict]) -> bytes:
    return json.dumps(operations, sort_keys=True, separators=(",", ":"), default=str).encode()
