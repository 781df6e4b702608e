"""Which files of the tree the whole-tree checks cover: what a checked-by
mark (``harness.selection``) may claim for a file a block shows, or for the
site's view of a file.

Read from the tree without running a tool, so that the site build can ask;
the checks say which files they really covered in their passing findings
(``Finding.covers``, made with ``covers_of``), and ``harness.proof`` holds the
one to the other.
"""

from __future__ import annotations

import functools
import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

KUSTOMIZE_CONFIG_GROUP = "kustomize.config.k8s.io/"


@dataclass(frozen=True)
class Coverage:
    """Which YAML files of the tree the whole-tree checks cover, read from the
    tree without running a tool: a kustomization's resources (and the bases
    and components it names, and theirs), and on each cluster, what Flux
    applies: the cluster's ``flux-system`` directory, then the ``path`` of
    every Flux Kustomization found there, and so on, as the Flux checks
    render it (``checks.flux_render``). Only files with an object in them
    count; a kustomization file counts for its own build."""

    built: frozenset[str]
    applied: dict[str, tuple[str, ...]]  # file -> the clusters whose Flux applies it


def coverage(root: Path) -> Coverage:
    from harness.checks import yaml_docs

    root = Path(root).resolve()
    return _coverage(root, yaml_docs.stamp(root))


@functools.lru_cache(maxsize=4)
def _coverage(root: Path, _stamp: tuple) -> Coverage:
    from harness.checks import flux_render, kustomize_build, yaml_docs

    tree = yaml_docs.tree(root)
    built: set[str] = set()
    for directory in kustomize_build.kustomization_dirs(root):
        built.add(kustomize_build.kustomization_file(root, directory))
        built |= _resources(root, tree, directory, set())
    applied: dict[str, set[str]] = defaultdict(set)
    for cluster_dir in flux_render.cluster_dirs(root):
        cluster = os.path.basename(cluster_dir)
        queue, seen = [f"{cluster_dir}/flux-system"], set()
        while queue:
            directory = queue.pop(0)
            if directory in seen:
                continue
            seen.add(directory)
            for path in _applied_from(root, tree, directory):
                applied[path].add(cluster)
                for doc in tree[path].docs:
                    target = _flux_path(doc)
                    if target is not None and (root / target).is_dir():
                        queue.append(target)
    return Coverage(frozenset(built), {path: tuple(sorted(c)) for path, c in sorted(applied.items())})


def _has_objects(tree, path: str) -> bool:
    return path in tree and any(doc.is_object and not str(doc.data["apiVersion"]).startswith(KUSTOMIZE_CONFIG_GROUP)
                                for doc in tree[path].docs)


def _resources(root: Path, tree, directory: str, seen: set[str]) -> set[str]:
    """The files with objects that ``kustomize build DIRECTORY`` takes in:
    its resources, and those of the bases and components it names."""
    from harness.checks import kustomize_build

    kfile = kustomize_build.kustomization_file(root, directory)
    if kfile is None or directory in seen or kfile not in tree or not tree[kfile].docs:
        return set()
    seen.add(directory)
    data = tree[kfile].docs[0].data
    found: set[str] = set()
    for key in kustomize_build.BASE_KEYS:
        entries = data.get(key) if isinstance(data, dict) else None
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, str) or kustomize_build.REMOTE.match(entry):
                continue
            target = os.path.normpath(os.path.join(directory, entry))
            if (root / target).is_dir():
                found |= _resources(root, tree, target, seen)
            elif _has_objects(tree, target):
                found.add(target)
    return found


def _applied_from(root: Path, tree, directory: str) -> set[str]:
    """The files with objects that Flux applies from ``directory``: built
    with kustomize when it has a kustomization, else every YAML file below
    it (a directory below with a kustomization is built)."""
    from harness.checks import kustomize_build

    if kustomize_build.kustomization_file(root, directory):
        return _resources(root, tree, directory, set())
    found: set[str] = set()
    for current, dirnames, filenames in os.walk(root / directory):
        rel = os.path.relpath(current, root)
        for sub in list(dirnames):
            if kustomize_build.kustomization_file(root, os.path.join(rel, sub)):
                found |= _resources(root, tree, os.path.normpath(os.path.join(rel, sub)), set())
                dirnames.remove(sub)
        for name in filenames:
            path = os.path.normpath(os.path.join(rel, name))
            if _has_objects(tree, path):
                found.add(path)
    return found


def _flux_path(doc) -> str | None:
    """The directory a Flux Kustomization document applies, or None."""
    from harness.checks import flux_render

    data = doc.data
    if not (doc.is_object and data.get("kind") == "Kustomization"
            and str(data.get("apiVersion", "")).startswith(flux_render.KUSTOMIZE_GROUP + "/")):
        return None
    path = str((data.get("spec") or {}).get("path") or "./")
    return os.path.normpath(path.lstrip("/")) if path not in ("", "./", ".") else "."


def covers_of(paths: Iterable[str | None]) -> tuple[str, ...]:
    """``Finding.covers`` from the tree files a check covered, sorted."""
    return tuple(sorted({p for p in paths if p}))

