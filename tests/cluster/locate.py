"""Where an object a cluster runs is written in the tree, and where a page
shows it: ``docs/example/kind.md:57 (clusters/staging/platform.yaml:45)``.

The cluster tier reads object names from the clusters (``Kustomization
flux-system/platform-configs``); a writer fixes lines. The offline harness
already knows both: ``flux_render`` works out what Flux applies on each
cluster with the tree line each object comes from (an overlay's patch
counts where the patch writes the field), and the extraction knows which
page line shows which tree line. This module only joins them up.

The sandbox cluster is bootstrapped from a copy of ``clusters/development``
(``snippets/sandbox-clone.sh``), so its objects are looked up there.
"""

from __future__ import annotations

import functools
from pathlib import Path

from harness.model import Block, Location, Origin

from . import names
from .failures import ObjectRef

# The cluster directory of the tree a cluster is made from, where it is not
# clusters/<target> (the sandbox is a copy of development).
CLONED_FROM = {names.SANDBOX: "development"}


def cluster_dir(target: str) -> str:
    return f"clusters/{CLONED_FROM.get(target, target)}"


def shown_at(blocks: list[Block], origin: Origin, lines: range | None = None) -> Location | None:
    """The first page line (in page order) that shows tree line ``origin``;
    failing that, one that shows any line of ``lines`` of the same file (the
    rest of the object, when a page shows part of it). The Location names
    the page line and ``origin``."""
    nearest = None
    for block in blocks:
        for offset, shown in enumerate(block.origins):
            if shown.path != origin.path or shown.path == block.page:
                continue
            if shown.line == origin.line:
                return Location(block.location(offset).page, origin)
            if nearest is None and lines is not None and shown.line in lines:
                nearest = Location(block.location(offset).page, origin)
    return nearest


class Locator:
    """Tree and page locations of the objects of a cluster of ``root``."""

    def __init__(self, root: Path, blocks: list[Block] | None = None):
        self.root = Path(root)
        self._blocks = blocks

    @property
    def blocks(self) -> list[Block]:
        if self._blocks is None:
            from harness import extract

            try:
                self._blocks = extract.collect(self.root)
            except Exception:  # noqa: BLE001 - a location is a help, never a second failure
                self._blocks = []
        return self._blocks

    def applied(self, target: str, ref: ObjectRef):
        """The object as ``flux_render`` has it for the cluster, or None."""
        from harness.checks import flux_render

        try:
            render = flux_render.render_all(self.root).get(cluster_dir(target))
        except Exception:  # noqa: BLE001
            return None
        if render is None:
            return None
        for obj in render.objects:
            if obj.kind == ref.kind and obj.name == ref.name and (
                    not ref.namespace or obj.namespace == ref.namespace):
                return obj
        return None

    def tree_origin(self, target: str, ref: ObjectRef, field: tuple = ()) -> tuple[Origin, range | None] | None:
        """(the tree line of ``field`` of the object, or of the object; the
        object's lines in its file), or None when the tree has no such object."""
        obj = self.applied(target, ref)
        if obj is None:
            return _by_name(self.root, ref)
        lines = _doc_lines(self.root, obj.source_file, obj.source_doc)
        if not field:
            return obj.origin, lines
        if field == ("spec", "ref"):
            from harness.checks import version_ranges

            version = version_ranges.version_field(obj.data)
            if version is not None:
                origin = version_ranges.rendered_field_origin(self.root, obj, version, CLONED_FROM.get(target, target))
                return origin, (lines if origin.path == obj.source_file else None)
        return obj.field(list(field)), lines

    def where(self, target: str, ref: ObjectRef, field: tuple = ()) -> Location | Origin | None:
        """``page:line (tree:line)`` of the object, or the tree line alone when
        no page shows it, or None when the tree does not define it."""
        found = self.tree_origin(target, ref, field)
        if found is None:
            return None
        origin, lines = found
        return shown_at(self.blocks, origin, lines) or origin


def _doc_lines(root: Path, path: str | None, doc) -> range | None:
    """The 1-based lines of a document of a tree file."""
    if path is None or doc is None:
        return None
    from harness.checks import yaml_docs

    tree_file = yaml_docs.tree(root).get(path)
    if tree_file is None:
        return None
    starts = sorted(d.line for d in tree_file.docs)
    later = [s for s in starts if s > doc.line]
    end = later[0] if later else len(tree_file.raw.split("\n"))
    return range(doc.line + 1, end + 1)


@functools.lru_cache(maxsize=64)
def _by_name_cached(root: Path, kind: str, name: str, _stamp: tuple):
    from harness.checks import yaml_docs

    found = yaml_docs.by_ident(root).get((kind, name))
    if not found:
        return None
    tree_file, doc = found[0]
    return tree_file.origin(doc.line), _doc_lines(root, tree_file.path, doc)


def _by_name(root: Path, ref: ObjectRef):
    """Any tree document of that kind and name (where the render does not
    know the object, e.g. without kustomize)."""
    from harness.checks import yaml_docs

    root = Path(root).resolve()
    return _by_name_cached(root, ref.kind, ref.name, yaml_docs.stamp(root))
