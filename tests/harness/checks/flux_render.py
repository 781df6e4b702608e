"""What Flux applies on each cluster, worked out offline.

For every ``clusters/<name>/`` directory: start from the ``flux-system``
Kustomization that bootstrap commits in ``flux-system/``, render its path,
then the path of every Flux Kustomization found in what it rendered, and so
on. Rendering a path follows kustomize-controller: ``kustomize build`` when
the directory has a kustomization file, else every YAML file under it (and
subdirectories with a kustomization file are built). Every source this tree
uses (the ``flux-system`` GitRepository and the platform source, whether a
GitRepository or an OCIRepository artifact) holds this repository's paths, so
a Kustomization's ``path`` is resolved from the repository root.

The rendered output of a Kustomization with ``spec.postBuild`` is substituted
with its inline ``substitute`` values and the defaults (the optional
``substituteFrom`` ConfigMaps do not exist offline). The result, per cluster,
is every object applied (with where it came from) and every problem found on
the way; ``flux_refs`` and ``substitution`` report them.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

from harness import tools
from harness.checks import flux_substitute, kustomize_build, yaml_docs
from harness.model import Origin

KUSTOMIZE_GROUP = "kustomize.toolkit.fluxcd.io"


@dataclass
class Applied:
    """One object Flux applies, with where it most likely came from."""

    data: dict
    origin: Origin
    source_doc: yaml_docs.Doc | None  # the tree document, for field lines
    source_file: str | None
    by: str  # the Flux Kustomization that applies it ("bootstrap" for flux-system/)

    @property
    def kind(self) -> str:
        return str(self.data.get("kind"))

    @property
    def name(self) -> str:
        return str((self.data.get("metadata") or {}).get("name"))

    @property
    def namespace(self) -> str:
        return str((self.data.get("metadata") or {}).get("namespace") or "default")

    def field(self, path: list) -> Origin:
        """The origin of the field at ``path`` (the object's line if unknown)."""
        if self.source_doc is None or self.source_file is None:
            return self.origin
        return Origin(self.source_file, yaml_docs.line_of(self.source_doc.data, path, self.source_doc.line) + 1)


@dataclass
class Issue:
    check: str  # "flux-refs" or "substitution"
    where: Origin
    message: str
    skipped: bool = False


@dataclass
class ClusterRender:
    cluster: str
    objects: list[Applied] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    rendered: list[str] = field(default_factory=list)  # Kustomizations rendered, for the report


def cluster_dirs(root: Path) -> list[str]:
    base = Path(root) / "clusters"
    if not base.is_dir():
        return []
    return sorted(
        f"clusters/{entry.name}" for entry in base.iterdir()
        if entry.is_dir() and (entry / "flux-system").is_dir()
    )


def _is_flux_kustomization(data: dict) -> bool:
    return data.get("kind") == "Kustomization" and str(data.get("apiVersion", "")).startswith(KUSTOMIZE_GROUP + "/")


def _docs_of_text(root: Path, text: str, near: str, by: str, render: ClusterRender,
                  label: str, fallback: Origin) -> list[Applied]:
    docs, error = yaml_docs.parse(text)
    if error is not None:
        render.issues.append(Issue("flux-refs", fallback, f"{label} does not parse: {error.message}"))
        return []
    applied = []
    for doc in docs:
        if not doc.is_object:
            continue
        source = yaml_docs.source_of(root, doc.data, near)
        if source is not None:
            tree_file, source_doc = source
            applied.append(Applied(doc.data, tree_file.origin(source_doc.line), source_doc, tree_file.path, by))
        else:
            applied.append(Applied(doc.data, fallback, None, None, by))
    return applied


def _render_text(root: Path, directory: str, render: ClusterRender, where: Origin) -> list[tuple[str, str]] | None:
    """(text, directory it was built from) pieces that make up ``directory``, or
    None when it cannot be rendered (an issue says why)."""
    if kustomize_build.kustomization_file(root, directory):
        result = kustomize_build.build(root, directory)
        if result is None:
            render.issues.append(Issue("flux-refs", where, f"cannot render {directory}: "
                                       + tools.missing_reason("kustomize", root), skipped=True))
            return None
        if result.error is not None:
            render.issues.append(Issue("flux-refs", where, f"`kustomize build {directory}` failed: {result.error}"))
            return None
        return [(result.text, directory)]
    pieces: list[tuple[str, str]] = []
    tree = yaml_docs.tree(root)
    for dirpath, dirnames, filenames in os.walk(Path(root) / directory):
        rel_dir = os.path.relpath(dirpath, root)
        for sub in sorted(dirnames):
            if kustomize_build.kustomization_file(root, os.path.join(rel_dir, sub)):
                built = _render_text(root, os.path.normpath(os.path.join(rel_dir, sub)), render, where)
                pieces.extend(built or [])
        dirnames[:] = sorted(d for d in dirnames if not kustomize_build.kustomization_file(root, os.path.join(rel_dir, d)))
        for name in sorted(filenames):
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if rel in tree:
                pieces.append((tree[rel].raw, rel))
    return pieces


def _substitute(root: Path, text: str, ks: Applied, near: str, render: ClusterRender) -> str:
    """Substitute like kustomize-controller for Kustomization ``ks``."""
    spec = ks.data.get("spec") or {}
    post_build = spec.get("postBuild")
    if not isinstance(post_build, dict):
        if "${" in text.replace("$${", ""):
            line = _line_with(root, text, "${", near)
            render.issues.append(Issue(
                "substitution", line or ks.field(["spec"]),
                f"{ks.kind} {ks.name} applies `${{...}}` but has no spec.postBuild, so Flux applies it "
                f"literally; add postBuild to {ks.kind} {ks.name} ({ks.origin}) or escape it as `$${{...}}`",
            ))
        return text
    values = {str(k): str(v).replace("\n", "") for k, v in (post_build.get("substitute") or {}).items()}
    result, problems = flux_substitute.substitute(text, values)
    lines = text.split("\n")
    for problem in problems:
        snippet = lines[problem.line].strip() if problem.line < len(lines) else ""
        token = snippet[snippet.find("${"):snippet.find("}", snippet.find("${")) + 1] if "${" in snippet else snippet
        where = _line_with(root, text, token, near) or ks.field(["spec", "postBuild"])
        render.issues.append(Issue(
            "substitution", where,
            f"{problem.message} (applied by {ks.kind} {ks.name}, {ks.origin})",
        ))
    return result


def _line_with(root: Path, text: str, token: str, near: str) -> Origin | None:
    """The tree file line (under ``near`` first) that contains ``token``."""
    tree = yaml_docs.tree(root)
    prefix = near.rstrip("/") + "/"
    ordered = sorted(tree.values(), key=lambda f: (f.path != near and not f.path.startswith(prefix), f.path))
    for tree_file in ordered:
        if token and token in tree_file.raw:
            for number, line in enumerate(tree_file.raw.split("\n")):
                if token in line and not line.lstrip().startswith("#"):
                    return Origin(tree_file.path, number + 1)
    return None


def _render_cluster(root: Path, cluster: str) -> ClusterRender:
    render = ClusterRender(cluster)
    boot_dir = f"{cluster}/flux-system"
    pieces = _render_text(root, boot_dir, render, Origin(boot_dir, 1))
    if pieces is None:
        return render
    queue: list[Applied] = []
    for text, near in pieces:
        text, _ = flux_substitute.substitute(text)  # bootstrap's objects are re-applied by flux-system
        for obj in _docs_of_text(root, text, near, "bootstrap", render, f"{near}", Origin(boot_dir, 1)):
            render.objects.append(obj)
            if _is_flux_kustomization(obj.data):
                queue.append(obj)
    if not queue:
        render.issues.append(Issue("flux-refs", Origin(boot_dir, 1),
                                   f"{boot_dir} holds no Flux Kustomization: nothing ties the cluster to its directory"))
    seen: set[tuple[str, str]] = set()
    while queue:
        ks = queue.pop(0)
        key = (ks.namespace, ks.name)
        if key in seen:
            continue
        seen.add(key)
        spec = ks.data.get("spec") or {}
        path = str(spec.get("path") or "./")
        directory = os.path.normpath(path.lstrip("/")) if path not in ("", "./", ".") else "."
        if directory.startswith("..") or not (Path(root) / directory).is_dir():
            render.issues.append(Issue(
                "flux-refs", ks.field(["spec", "path"]),
                f"Kustomization {ks.namespace}/{ks.name}: path `{path}` does not exist in the repository "
                f"(paths are relative to the repository root, in every source this tree uses)",
            ))
            continue
        render.rendered.append(f"{ks.namespace}/{ks.name} -> {directory}")
        pieces = _render_text(root, directory, render, ks.field(["spec", "path"]))
        if pieces is None:
            continue
        target_ns = spec.get("targetNamespace")
        for text, near in pieces:
            text = _substitute(root, text, ks, near, render)
            for obj in _docs_of_text(root, text, near, f"{ks.namespace}/{ks.name}", render, near, ks.origin):
                meta = obj.data.get("metadata")
                if target_ns and isinstance(meta, dict):
                    meta["namespace"] = target_ns
                render.objects.append(obj)
                if _is_flux_kustomization(obj.data):
                    queue.append(obj)
    return render


@functools.lru_cache(maxsize=4)
def _render_all(root: Path, _stamp: tuple, _kustomize: str | None) -> dict[str, ClusterRender]:
    clusters = cluster_dirs(root)
    # Warm the build cache in parallel: every kustomization of the tree.
    if _kustomize is not None:
        kustomize_build.build_many(root, kustomize_build.kustomization_dirs(root))
    return {cluster: _render_cluster(root, cluster) for cluster in clusters}


def render_all(root: Path) -> dict[str, ClusterRender]:
    """Per cluster directory, what Flux applies there (cached per tree content)."""
    root = Path(root).resolve()
    return _render_all(root, yaml_docs.stamp(root), tools.find("kustomize", root))
