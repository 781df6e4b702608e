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

The rendered output of a Kustomization is substituted the way
kustomize-controller does it (``substitution_of``): only with
``spec.postBuild``, only when a variable is defined or
``substituteStrategy: Always``, object by object, skipping objects labelled
or annotated ``kustomize.toolkit.fluxcd.io/substitute: disabled``; with its
inline ``substitute`` values and the defaults (the optional
``substituteFrom`` ConfigMaps do not exist offline). A ``${...}`` that Flux
would apply literally is an issue. The result, per cluster,
is every object applied (with where it came from) and every problem found on
the way; ``flux_refs`` and ``substitution`` report them.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from harness import tools
from harness.checks import flux_substitute, kustomize_build, yaml_docs
from harness.model import Origin

KUSTOMIZE_GROUP = "kustomize.toolkit.fluxcd.io"
SUBSTITUTE_KEY = "kustomize.toolkit.fluxcd.io/substitute"


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


@dataclass(frozen=True)
class VariableUse:
    """One ``${name}`` in what a Kustomization applies (and substitutes)."""

    name: str
    default: str | None  # the text after `:=` / `:-` / `=` / `-`, None without one
    by: Applied  # the Flux Kustomization that substitutes it
    where: Origin  # the tree file line that holds it


@dataclass
class ClusterRender:
    cluster: str
    objects: list[Applied] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    rendered: list[str] = field(default_factory=list)  # Kustomizations rendered, for the report
    variables: list[VariableUse] = field(default_factory=list)
    # yaml_docs.by_ident of the tree, once per render: where each applied
    # object comes from (looked up per object, it walked the tree each time)
    index: dict | None = None


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
        if render.index is None:
            render.index = yaml_docs.by_ident(root)
        source = yaml_docs.source_of(root, doc.data, near, index=render.index)
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
            # The kustomize-build check reports the failure, once; here it only
            # means that what this Kustomization applies is unknown.
            render.issues.append(Issue("flux-refs", where, f"cannot render {directory}: `kustomize build {directory}` "
                                       f"fails (see [kustomize-build])", skipped=True))
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


@dataclass
class Substitution:
    """Whether kustomize-controller substitutes what a Kustomization applies,
    and with which values (what ``fluxcd/pkg/kustomize`` SubstituteVariables
    decides)."""

    runs: bool
    values: dict[str, str]
    why_not: str = ""  # when it does not run: the reason, for the message


def substitution_of(ks: dict) -> Substitution:
    """Flux substitutes only when ``spec.postBuild`` is set and at least one
    variable is defined (inline ``substitute`` or a ``substituteFrom``
    that resolves), unless ``substituteStrategy: Always``. Offline, an
    optional ``substituteFrom`` source does not exist, so it defines none; a
    required one must exist on the cluster (Flux fails without it), so it
    counts as defining variables (whose values the harness does not know)."""
    spec = ks.get("spec") or {}
    post_build = spec.get("postBuild")
    if not isinstance(post_build, dict):
        return Substitution(False, {}, "has no spec.postBuild")
    values = {str(k): str(v).replace("\n", "") for k, v in (post_build.get("substitute") or {}).items()}
    refs = [r for r in post_build.get("substituteFrom") or [] if isinstance(r, dict)]
    required = [r for r in refs if not r.get("optional")]
    if post_build.get("substituteStrategy") == "Always" or values or required:
        return Substitution(True, values)
    optional = ", ".join(f"{r.get('kind')} {r.get('name')}" for r in refs)
    why = "has spec.postBuild but defines no variable (no postBuild.substitute"
    why += f", and the optional substituteFrom {optional} defines none where it does not exist)" if optional else ")"
    return Substitution(False, {}, why)


_SEPARATOR = re.compile(r"^---(?:\s|$)")
_DISABLED = re.compile(re.escape(SUBSTITUTE_KEY) + r"""["']?\s*:\s*["']?disabled\b""")


def _documents(text: str) -> list[tuple[int, str]]:
    """``text`` cut at its ``---`` lines into (first line, text) pieces that
    join back into ``text`` with newlines."""
    lines = text.split("\n")
    pieces, start = [], 0
    for number, line in enumerate(lines):
        if number > start and _SEPARATOR.match(line):
            pieces.append((start, "\n".join(lines[start:number])))
            start = number
    pieces.append((start, "\n".join(lines[start:])))
    return pieces


def _disabled(document: str) -> bool:
    """The object is labelled or annotated ``kustomize.toolkit.fluxcd.io/substitute: disabled``."""
    if SUBSTITUTE_KEY not in document:
        return False
    docs, error = yaml_docs.parse(document)
    if error is not None:
        return bool(_DISABLED.search(document))
    for doc in docs:
        meta = doc.data.get("metadata") if isinstance(doc.data, dict) else None
        if isinstance(meta, dict) and any(
            isinstance(meta.get(key), dict) and str(meta[key].get(SUBSTITUTE_KEY)) == "disabled"
            for key in ("labels", "annotations")
        ):
            return True
    return False


_REFERENCE = re.compile(r"(?<!\$)\$\{[^}\n]*\}?")
_VARIABLE = re.compile(r"(?<!\$)\$\{(?P<name>[_A-Za-z][_A-Za-z0-9]*)(?::?[=-](?P<default>[^}\n]*))?\}")


def _substitute(root: Path, text: str, ks: Applied, near: str, render: ClusterRender) -> str:
    """Substitute like kustomize-controller for Kustomization ``ks``: object
    by object, skipping objects that disable it, and not at all when Flux
    would not (then every ``${...}`` left is an issue)."""
    plan = substitution_of(ks.data)
    out: list[str] = []
    for first, document in _documents(text):
        if _disabled(document) or "${" not in document:
            out.append(document)
            continue
        if not plan.runs:
            tokens = []
            for line in document.split("\n"):
                if not line.lstrip().startswith("#"):
                    tokens += [t for t in _REFERENCE.findall(line) if t not in tokens]
            for token in tokens:
                if ks.data.get("spec", {}).get("postBuild") is None:
                    fix = f"add postBuild to {ks.kind} {ks.name} ({ks.origin}) or escape it as `$${{...}}`"
                else:
                    fix = (f"set spec.postBuild.substituteStrategy: Always or define a variable in "
                           f"{ks.kind} {ks.name} ({ks.field(['spec', 'postBuild'])})")
                render.issues.append(Issue(
                    "substitution", _line_with(root, text, token, near) or ks.field(["spec"]),
                    f"`{token}` is applied literally: {ks.kind} {ks.name} {plan.why_not}, and Flux "
                    f"substitutes only when a variable is defined; {fix}",
                ))
            out.append(document)
            continue
        for line in document.split("\n"):
            if line.lstrip().startswith("#"):
                continue
            for match in _VARIABLE.finditer(line):
                where = _line_with(root, text, match.group(0), near) or ks.field(["spec", "postBuild"])
                render.variables.append(VariableUse(match.group("name"), match.group("default"), ks, where))
        result, problems = flux_substitute.substitute(document, plan.values)
        lines = document.split("\n")
        for problem in problems:
            snippet = lines[problem.line].strip() if problem.line < len(lines) else ""
            token = snippet[snippet.find("${"):snippet.find("}", snippet.find("${")) + 1] if "${" in snippet else snippet
            where = _line_with(root, text, token, near) or ks.field(["spec", "postBuild"])
            render.issues.append(Issue(
                "substitution", where,
                f"{problem.message} (applied by {ks.kind} {ks.name}, {ks.origin})",
            ))
        out.append(result)
    return "\n".join(out)


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


SYNC = "gotk-sync.yaml"


def _no_root_kustomization(root: Path, boot_dir: str) -> Issue:
    """What to say when bootstrap's directory applies no Flux Kustomization:
    at the ``resources`` of its kustomization.yaml when that leaves out the
    gotk-sync.yaml beside it (which bootstrap writes and applies from there)."""
    kfile = kustomize_build.kustomization_file(root, boot_dir)
    tree_file = yaml_docs.tree(root).get(kfile) if kfile else None
    docs = [d for d in tree_file.docs if isinstance(d.data, dict)] if tree_file is not None else []
    resources = docs[0].data.get("resources") if docs else None
    listed = {str(r).removeprefix("./") for r in resources} if isinstance(resources, list) else set()
    if docs and (Path(root) / boot_dir / SYNC).is_file() and SYNC not in listed:
        return Issue("flux-refs", tree_file.origin(yaml_docs.line_of(docs[0].data, ["resources"], docs[0].line)),
                     f"`resources` does not list {SYNC}, so {boot_dir} holds no Flux Kustomization and nothing "
                     f"ties the cluster to its directory: on a fresh cluster `flux bootstrap` applies this "
                     f"kustomization.yaml; list {SYNC} (the root source and Kustomization) in `resources`")
    return Issue("flux-refs", Origin(boot_dir, 1),
                 f"{boot_dir} holds no Flux Kustomization: nothing ties the cluster to its directory")


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
        render.issues.append(_no_root_kustomization(root, boot_dir))
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
