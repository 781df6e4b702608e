"""Check: every version range parses as Flux parses it, admits some version,
and admits the release the next cluster pins.

Ranges are read with the rules of Masterminds/semver v3
(``harness.masterminds_semver``), which source-controller uses for them:

- ``spec.ref.semver`` of a GitRepository or an OCIRepository;
- ``spec.version`` of a HelmChart and ``spec.chart.spec.version`` of a
  HelmRelease;
- ``spec.policy.semver.range`` of an ImagePolicy.

They are looked for in every YAML file of the tree, in what Flux applies on
each cluster (``flux_render``: an overlay's patch that sets ``ref`` counts
where the patch writes it), and in the manifests a page writes itself. A
range Flux refuses fails, with the library's message; so does one that admits
no version at all (``>=2.0.0 <1.0.0``).

Promotion: a release reaches production only after it ran on staging
(CONTRIBUTING.md, "The clusters"). So where a source is pinned to a tag
(``ref.tag``) on one cluster and follows a range on the cluster before it in
``PROMOTION``, the range must admit the pin.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness import masterminds_semver as semver
from harness.checks import flux_render, yaml_docs
from harness.model import Context, Finding, Location, Origin, Outcome

CHECK = "semver"
PROMOTION = ("development", "staging", "production")
SYNTAX = "Masterminds semver ranges read like `>=1.0.0 <2.0.0`, `~1.4`, `^1.4`, `1.4.x` or `1.2 - 1.4`, with `||` between alternatives"


@dataclass(frozen=True)
class VersionField:
    """Where an object says which versions it takes."""

    path: tuple  # e.g. ("spec", "ref", "semver")
    text: str
    is_range: bool  # False: a pinned tag


def version_field(data: dict) -> VersionField | None:
    """The range or pinned tag of a Flux object, or None."""
    if not isinstance(data, dict):
        return None
    api, kind = str(data.get("apiVersion", "")), data.get("kind")
    spec = data.get("spec") if isinstance(data.get("spec"), dict) else {}
    if api.startswith("source.toolkit.fluxcd.io/") and kind in ("GitRepository", "OCIRepository"):
        ref = spec.get("ref") if isinstance(spec.get("ref"), dict) else {}
        if ref.get("semver") is not None:
            return VersionField(("spec", "ref", "semver"), str(ref["semver"]), True)
        if ref.get("tag") is not None:
            return VersionField(("spec", "ref", "tag"), str(ref["tag"]), False)
    elif api.startswith("source.toolkit.fluxcd.io/") and kind == "HelmChart" and spec.get("version") is not None:
        return VersionField(("spec", "version"), str(spec["version"]), True)
    elif api.startswith("helm.toolkit.fluxcd.io/") and kind == "HelmRelease":
        chart = ((spec.get("chart") or {}).get("spec") or {}) if isinstance(spec.get("chart"), dict) else {}
        if isinstance(chart, dict) and chart.get("version") is not None:
            return VersionField(("spec", "chart", "spec", "version"), str(chart["version"]), True)
    elif api.startswith("image.toolkit.fluxcd.io/") and kind == "ImagePolicy":
        rng = (((spec.get("policy") or {}).get("semver") or {}).get("range")) if isinstance(spec.get("policy"), dict) \
            else None
        if rng is not None:
            return VersionField(("spec", "policy", "semver", "range"), str(rng), True)
    return None


def _ident(data: dict) -> str:
    meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    ns = meta.get("namespace")
    return f"{data.get('kind')} {ns + '/' if ns else ''}{meta.get('name')}"


def _line_with_text(root: Path, text: str, prefer: str, only_preferred: bool = False) -> Origin | None:
    """A tree file line that writes ``text`` as a value, preferring paths that
    contain ``prefer`` (the cluster's name)."""
    tree = yaml_docs.tree(root)
    ordered = sorted(tree.values(), key=lambda f: (prefer not in f.path, f.path))
    if only_preferred:
        ordered = [f for f in ordered if prefer in f.path]
    for quoted in (f'"{text}"', f"'{text}'", f": {text}"):
        for tree_file in ordered:
            if quoted not in tree_file.raw:
                continue
            for number, line in enumerate(tree_file.raw.split("\n"), 1):
                if quoted in line and not line.lstrip().startswith("#"):
                    return Origin(tree_file.path, number)
    return None


def rendered_field_origin(root: Path, obj: flux_render.Applied, field: VersionField, cluster: str) -> Origin:
    """The tree line that gives a rendered object its range or tag: the
    object's own file when it has the same value there, else the line (an
    overlay's patch) that writes the value."""
    overlay = _line_with_text(root, field.text, cluster, only_preferred=True)
    if overlay is not None:
        return overlay  # the cluster's own file (or overlay) writes it
    source = obj.source_doc.data if obj.source_doc is not None else None
    own = version_field(source) if source is not None else None
    if own is not None and own.path == field.path and own.text == field.text:
        return obj.field(list(field.path))
    return _line_with_text(root, field.text, cluster) or obj.field(list(field.path))


def problem(text: str) -> str | None:
    """Why a range is no good (refused, or admits nothing), or None."""
    try:
        constraint = semver.parse_constraint(text)
    except semver.SemverError as error:
        return f"is not a version range Flux accepts: {error} ({SYNTAX})"
    if constraint.witness() is None:
        return ("admits no version at all, so the source never finds an artifact to fetch; "
                "check the bounds (a lower bound above the upper one, or `<` where `<=` was meant)")
    return None


def _cluster_name(cluster_dir: str) -> str:
    return cluster_dir.rsplit("/", 1)[-1]


def run(ctx: Context) -> list[Finding]:
    root = Path(ctx.root).resolve()
    findings: list[Finding] = []
    seen: set[tuple[str, str]] = set()
    checked = 0

    def examine(where: Location | Origin, label: str, field: VersionField, block=None) -> None:
        nonlocal checked
        if not field.is_range or (str(where), field.text) in seen:
            return
        seen.add((str(where), field.text))
        checked += 1
        why = problem(field.text)
        if why is not None:
            findings.append(Finding(CHECK, Outcome.FAILED, where,
                                    f"{label} {'.'.join(field.path[1:])} `{field.text}` {why}", block))

    for tree_file in yaml_docs.tree(root).values():
        for doc in tree_file.docs:
            field = version_field(doc.data)
            if field is not None:
                examine(tree_file.origin(yaml_docs.line_of(doc.data, list(field.path), doc.line)),
                        _ident(doc.data), field)
    renders = flux_render.render_all(root)
    by_cluster: dict[str, dict[tuple, tuple[flux_render.Applied, VersionField, Origin]]] = {}
    for cluster_dir, render in renders.items():
        cluster = _cluster_name(cluster_dir)
        for obj in render.objects:
            field = version_field(obj.data)
            if field is None:
                continue
            where = rendered_field_origin(root, obj, field, cluster)
            examine(where, f"{cluster}: {_ident(obj.data)}", field)
            key = (str(obj.data.get("apiVersion", "")).split("/")[0], obj.kind, obj.namespace, obj.name)
            by_cluster.setdefault(cluster, {})[key] = (obj, field, where)
    for parsed in yaml_docs.manifest_blocks(ctx.blocks):
        for doc in parsed.docs:
            field = version_field(doc.data)
            if field is None:
                continue
            line = yaml_docs.line_of(doc.data, list(field.path), doc.line)
            origin = parsed.block.origins[line] if line < len(parsed.block.origins) else None
            if origin is not None and origin.path != parsed.block.page:
                continue  # included from the tree: checked there
            examine(parsed.where(line), _ident(doc.data), field, parsed.block)

    for earlier, later in zip(PROMOTION, PROMOTION[1:]):
        for key, (obj, field, where) in sorted(by_cluster.get(later, {}).items()):
            before = by_cluster.get(earlier, {}).get(key)
            if field.is_range or before is None or not before[1].is_range or problem(before[1].text):
                continue
            _, range_field, range_where = before
            try:
                admitted = semver.parse_constraint(range_field.text).admits(field.text)
                why = "does not admit it"
            except semver.SemverError:
                admitted, why = False, "cannot admit it: it is not a semantic version"
            checked += 1
            if not admitted:
                findings.append(Finding(
                    CHECK, Outcome.FAILED, where,
                    f"{later}: {_ident(obj.data)} pins `{field.text}`, and {earlier}'s range "
                    f"`{range_field.text}` ({range_where}) {why}: a release reaches {later} after it ran on "
                    f"{earlier}; pin a release the range admits, or move the range"))
    if not any(f.outcome is Outcome.FAILED for f in findings):
        findings.append(Finding(CHECK, Outcome.PASSED, Origin("clusters", 1),
                                f"{checked} version ranges and pins: each parses, admits a version, and admits "
                                f"what the next cluster pins"))
    return findings
