"""Every object one cluster will have, with where each comes from, and the
flags its Flux controllers run with: what the ``references`` check resolves
against.

The sources, in the order they are read:

- Kubernetes itself: the system namespaces, the default RBAC roles, and in
  every namespace its ``default`` ServiceAccount and ``kube-root-ca.crt``
  ConfigMap (``tests/harness/schemas/kubernetes-builtins.yaml``);
- bootstrap: the Flux components and the credentials Secret
  (``flux_bootstrap``), with the controllers' flags;
- the tree: every object a Flux Kustomization applies (``flux_render``);
- the charts the cluster's HelmReleases install (``helm_charts``);
- the procedures in ``snippets/`` (``procedures``);
- what controllers make from those objects: the table's ``makes`` entries
  (cert-manager writes a Certificate's Secret).

Objects are keyed by API group, kind, namespace (None for cluster-scoped
kinds: the table's list, and every CRD's own ``scope``) and name. A source
that cannot be read (a tool missing) is named in ``unknown``: a reference
that nothing else resolves is then not known to be wrong.
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass, field
from pathlib import Path


import yamlload

from harness.checks import flux_bootstrap, flux_render, procedures, reference_table
from harness.model import Origin

BUILTINS_FILE = Path(__file__).resolve().parents[1] / "schemas" / "kubernetes-builtins.yaml"
KUBERNETES = "Kubernetes itself"
BOOTSTRAP = "bootstrap"  # flux_render's ``by`` for the objects of flux-system/


@dataclass(frozen=True)
class Source:
    """Where an object comes from, for messages."""

    what: str  # "tree", "bootstrap", "chart", "procedure", "kubernetes", "made"
    where: str


@dataclass
class Inventory:
    cluster: str
    # (kind, namespace or None, name) -> group -> sources
    objects: dict[tuple[str, str | None, str], dict[str, list[Source]]] = field(default_factory=dict)
    scoped_kinds: set[str] = field(default_factory=set)  # cluster-scoped (any group)
    scoped_crds: set[tuple[str, str]] = field(default_factory=set)  # (group, kind) of cluster-scoped CRDs
    flags: dict[str, dict[str, flux_bootstrap.FlagSetting]] = field(default_factory=dict)
    controllers_namespace: str = "flux-system"  # where bootstrap installs the controllers
    # Sources that could not be read: (why, the namespace whose objects they
    # would make or None for any namespace, the tree line it is about). A
    # chart installs into its release's namespace and makes cluster-scoped
    # objects.
    unknown: list[tuple[str, str | None, Origin]] = field(default_factory=list)

    def cluster_scoped(self, group: str | None, kind: str) -> bool:
        if kind in self.scoped_kinds:
            return True
        return any(k == kind and (group is None or g == group) for g, k in self.scoped_crds)

    def unknown_for(self, namespace: str | None) -> list[str]:
        """Why an object in ``namespace`` (None: cluster-scoped) may exist
        although no source that could be read makes it."""
        return list(dict.fromkeys(why for why, where, _line in self.unknown
                                  if where is None or namespace is None or where == namespace))

    def namespace_for(self, group: str | None, kind: str, namespace: str | None) -> str | None:
        return None if self.cluster_scoped(group, kind) else (namespace or "default")

    def add(self, group: str, kind: str, namespace: str | None, name: str, source: Source) -> None:
        key = (kind, self.namespace_for(group, kind, namespace), name)
        self.objects.setdefault(key, {}).setdefault(group, []).append(source)

    def find(self, group: str | None, kind: str, namespace: str | None, name: str) -> list[Source]:
        """Where the object comes from (empty: nowhere)."""
        groups = self.objects.get((kind, self.namespace_for(group, kind, namespace), name), {})
        if group is None:
            return [s for sources in groups.values() for s in sources]
        return list(groups.get(group, []))

    def elsewhere(self, group: str | None, kind: str, name: str) -> list[tuple[str, list[Source]]]:
        """(namespace, sources) of objects of that kind and name in other namespaces."""
        out = []
        for (k, namespace, n), groups in self.objects.items():
            if k == kind and n == name and namespace is not None:
                sources = [s for g, ss in groups.items() if group is None or g == group for s in ss]
                if sources:
                    out.append((namespace, sources))
        return sorted(out, key=lambda item: item[0])

    def similar(self, group: str | None, kind: str, namespace: str | None, name: str) -> list[tuple[str, list[Source]]]:
        """(name, sources) of objects of that kind in that namespace whose names are close to ``name``."""
        namespace = self.namespace_for(group, kind, namespace)
        names = {n: groups for (k, ns, n), groups in self.objects.items() if k == kind and ns == namespace}
        close = difflib.get_close_matches(name, list(names), n=2, cutoff=0.75)
        return [(n, [s for g, ss in names[n].items() if group is None or g == group for s in ss]) for n in close]


@functools.lru_cache(maxsize=2)
def _builtins(path: str = str(BUILTINS_FILE)) -> dict:
    with open(path, encoding="utf-8") as handle:
        return yamlload.load(handle) or {}


def _identity(data: dict) -> tuple[str, str, str | None, str] | None:
    meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else None
    if not meta or not meta.get("name") or not data.get("kind"):
        return None
    return (reference_table.group_of(data.get("apiVersion")), str(data["kind"]),
            str(meta["namespace"]) if meta.get("namespace") else None, str(meta["name"]))


def _crd_scope(data: dict) -> tuple[str, str] | None:
    """(group, kind) of a cluster-scoped CRD."""
    if data.get("kind") != "CustomResourceDefinition":
        return None
    spec = data.get("spec") if isinstance(data.get("spec"), dict) else {}
    kind = (spec.get("names") or {}).get("kind") if isinstance(spec.get("names"), dict) else None
    if spec.get("scope") == "Cluster" and kind:
        return str(spec.get("group") or ""), str(kind)
    return None


def build(root: Path, render: flux_render.ClusterRender, charts: list[tuple[dict, Source]] | None = None,
          charts_unknown: list[tuple[str, str | None, Origin]] | None = None,
          page_made: list | None = None) -> Inventory:
    """What ``render.cluster`` will have. ``charts``: the objects its
    HelmReleases' charts render, each with its source (``helm_charts``);
    ``charts_unknown``: (why, namespace) of charts whose objects are not known;
    ``page_made``: what the pages' cluster blocks make on this cluster
    (``procedures.from_cluster_blocks``)."""
    root = Path(root).resolve()
    table = reference_table.load()
    inv = Inventory(render.cluster, scoped_kinds=set(table.cluster_scoped))
    builtins = _builtins()
    boot = flux_bootstrap.for_cluster(root, render.cluster)
    charts = charts or []
    if boot.reason:
        inv.unknown.append((boot.reason, None, Origin(f"{render.cluster}/flux-system/kustomization.yaml", 1)))
    inv.unknown += [(f"what some Kustomizations apply is not known ({issue.message})", None, issue.where)
                    for issue in render.issues if issue.skipped]
    inv.unknown += charts_unknown or []
    inv.flags = boot.flags
    inv.controllers_namespace = next((str(o["metadata"].get("namespace")) for o in boot.objects
                                      if o.get("kind") == "Deployment" and o["metadata"].get("namespace")),
                                     inv.controllers_namespace)

    # Scopes first: a CRD says whether its objects have a namespace.
    for data in [*boot.objects, *(o.data for o in render.objects), *(d for d, _ in charts)]:
        scope = _crd_scope(data)
        if scope:
            inv.scoped_crds.add(scope)

    kube = Source("kubernetes", KUBERNETES)
    for item in builtins.get("cluster") or []:
        inv.add(str(item.get("group") or ""), item["kind"], item.get("namespace"), item["name"], kube)
    for item in builtins.get("roles") or []:
        inv.add("rbac.authorization.k8s.io", item["kind"], item.get("namespace"), item["name"],
                Source("kubernetes", f"{KUBERNETES} (its default RBAC policy)"))
    for data in boot.objects:
        identity = _identity(data)
        if identity:
            inv.add(*identity, Source("bootstrap", boot.installed_by))
    if boot.secret is not None:
        made = boot.secret
        inv.add(made.group, made.kind, made.namespace, made.name, Source("bootstrap", f"{made.where} {made.how}"))
    for obj in render.objects:
        identity = _identity(obj.data)
        if identity:
            by = "bootstrap" if obj.by == BOOTSTRAP else f"Kustomization {obj.by}"
            inv.add(*identity, Source("tree", f"{obj.origin}, applied by {by}"))
    for data, source in charts:
        identity = _identity(data)
        if identity:
            inv.add(*identity, source)
    for made in procedures.read(root).made:
        inv.add(made.group, made.kind, made.namespace, made.name, Source("procedure", f"{made.where} {made.how}"))
    for made in page_made or []:
        inv.add(made.group, made.kind, made.namespace, made.name,
                Source("procedure", f"{made.where} {made.how} (a cluster block of the page)"))
    makers = [(o.data, f"{o.kind} {o.namespace}/{o.name} ({o.origin})") for o in render.objects]
    for data, source in charts:
        identity = _identity(data)
        if identity:
            makers.append((data, f"{identity[1]} {identity[2]}/{identity[3]} ({source.where})"))
    for data, what in makers:
        for ref in reference_table.made_by(data):
            inv.add(ref.group or "", ref.kind, ref.namespace, ref.name, Source("made", f"made from {what}"))
    # Every namespace gets its default ServiceAccount and root CA ConfigMap.
    namespaces = [ns for (kind, _none, ns), groups in list(inv.objects.items()) if kind == "Namespace" and "" in groups]
    for namespace in namespaces:
        for item in builtins.get("every_namespace") or []:
            inv.add(str(item.get("group") or ""), item["kind"], namespace, item["name"],
                    Source("kubernetes", f"{KUBERNETES} (in every namespace)"))
    return inv

