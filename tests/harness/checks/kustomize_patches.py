"""Check: every kustomize patch with a ``target`` selects at least one resource.

kustomize applies a ``patches`` entry that has a ``target`` to whatever the
target selects, and when that is nothing it says nothing: an overlay whose
target misspells a name, a kind or a label builds without error and runs the
base's values. (A patch without a target names its object itself, and kustomize
fails on it when no resource matches; the ``kustomize-build`` check reports
that.)

What a target selects is what kustomize itself selects, so the check asks
kustomize: every kustomization file with targeted patches gets, right before
each of them, a patch with the same target that only adds an annotation
naming it. One ``kustomize build`` per such directory, in a scratch copy of
the files the build reads (``kustomize_build.cached_build``), then shows
which targets reached a resource: an annotation that is
on no object of the output belongs to a patch that selects nothing. The marker
sits at the patch's own place in the list, so it sees the resources as the
patch does (after the patches before it).

A cluster's ``flux-system/`` is built as bootstrap builds it: with the
components ``flux bootstrap`` writes in place of the placeholder
``gotk-components.yaml`` (``flux_bootstrap``), so that the patches meant
for them (the multi-tenancy lockdown) are held to the real controllers.
Without the flux CLI those components are not known, and a patch that
selects nothing there is skipped with that reason.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml

import yamlload

from harness import tools
from harness.checks import flux_bootstrap, flux_render, kustomize_build, yaml_docs
from harness.model import Context, Finding, Origin, Outcome

CHECK = "patch-target"
PATCH_LISTS = ("patches", "patchesJson6902")
MARKER = "patch-target.docs-test.invalid/k{dir}-p{index}"


@dataclass(frozen=True)
class Patch:
    directory: str
    kfile: str
    key: str  # "patches" or "patchesJson6902"
    index: int
    target: dict

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.target.items())


def targeted_patches(root: Path, directory: str) -> list[Patch]:
    kfile = kustomize_build.kustomization_file(root, directory)
    tree_file = yaml_docs.tree(root).get(kfile) if kfile else None
    if tree_file is None or not tree_file.docs or not isinstance(tree_file.docs[0].data, dict):
        return []
    data = tree_file.docs[0].data
    if data.get("kind") == "Component":
        return []  # built only through the kustomizations that use it
    found = []
    for key in PATCH_LISTS:
        for index, entry in enumerate(data.get(key) or []):
            if isinstance(entry, dict) and isinstance(entry.get("target"), dict) and entry["target"]:
                found.append(Patch(directory, kfile, key, index, dict(entry["target"])))
    return found


def _marked(data: dict, patches: list[Patch], number: int) -> dict:
    """The kustomization with a marker patch before each targeted patch."""
    for key in PATCH_LISTS:
        entries = data.get(key) or []
        out = []
        for index, entry in enumerate(entries):
            if any(p.key == key and p.index == index for p in patches):
                marker = {
                    "apiVersion": "v1", "kind": "Any", "metadata": {
                        "name": "any", "annotations": {MARKER.format(dir=number, index=f"{key}-{index}"): "selected"},
                    },
                }
                out.append({"target": entry["target"], "patch": yaml.safe_dump(marker)})
            out.append(entry)
        if entries:
            data[key] = out
    data.setdefault("patches", [])
    # patchesJson6902 markers are strategic-merge patches: they go to `patches`,
    # which kustomize applies after patchesJson6902, so move those entries too.
    if data.get("patchesJson6902"):
        data["patches"] = data.pop("patchesJson6902") + data["patches"]
    return data


@dataclass(frozen=True)
class Selection:
    selected: frozenset[str]  # marker keys found on some object
    objects: tuple[str, ...]  # what the build renders, for the message
    error: str | None = None


@functools.lru_cache(maxsize=4)
def _selections(root: Path, _stamp: tuple, kustomize: str) -> dict[str, Selection]:
    directories = [d for d in kustomize_build.kustomization_dirs(root) if targeted_patches(root, d)]
    tree = yaml_docs.tree(root)

    components = flux_bootstrap.components_text(root)
    bootstrapped = {f"{cluster}/flux-system" for cluster in flux_render.cluster_dirs(root)}

    def marked_build(item: tuple[int, str]) -> kustomize_build.Build:
        number, directory = item
        patches = targeted_patches(root, directory)
        kfile = patches[0].kfile
        # the file as written (the tree index holds it after substitution)
        marked = _marked(yamlload.load(tree[kfile].raw), patches, number)
        overrides = {kfile: yaml.safe_dump(marked, sort_keys=False)}
        placeholder = os.path.join(directory, flux_bootstrap.COMPONENTS)
        if directory in bootstrapped and components is not None and (root / placeholder).is_file():
            overrides[placeholder] = components  # as bootstrap builds it
        return kustomize_build.cached_build(root, directory, kustomize, overrides)

    with ThreadPoolExecutor(max_workers=max(2, min(8, os.cpu_count() or 2))) as pool:
        outputs = list(pool.map(marked_build, enumerate(directories)))
    result = {}
    for directory, built in zip(directories, outputs):
        if built.error is not None:
            result[directory] = Selection(frozenset(), (), kustomize_build.describe_error(root, built.error))
            continue
        docs, _ = yaml_docs.parse(built.text)
        keys, objects = set(), []
        for doc in docs:
            if not doc.is_object:
                continue
            meta = doc.data.get("metadata") or {}
            keys.update(k for k in (meta.get("annotations") or {}) if k.startswith("patch-target.docs-test.invalid/"))
            objects.append(f"{doc.data['kind']} {meta.get('name')}")
        result[directory] = Selection(frozenset(keys), tuple(objects))
    return result


def _unknown_components(root: Path, patch: Patch) -> str | None:
    """Why the Flux components a patch of a cluster's flux-system/ may be
    meant for are not known (the flux CLI is missing), or None."""
    if not (patch.kfile.startswith("clusters/") and patch.directory.endswith("/flux-system")):
        return None
    if flux_bootstrap.components_text(root) is not None:
        return None
    return tools.missing_reason("flux", root)


def run(ctx: Context) -> list[Finding]:
    root = Path(ctx.root).resolve()
    directories = [d for d in kustomize_build.kustomization_dirs(root) if targeted_patches(root, d)]
    kustomize = tools.find("kustomize", root)
    if kustomize is None:
        reason = tools.missing_reason("kustomize", root)
        return [Finding(CHECK, Outcome.SKIPPED, Origin(targeted_patches(root, d)[0].kfile, 1), reason)
                for d in directories]
    selections = _selections(root, yaml_docs.stamp(root), kustomize)
    tree = yaml_docs.tree(root)
    findings: list[Finding] = []
    for number, directory in enumerate(directories):
        selection = selections[directory]
        patches = targeted_patches(root, directory)
        kfile = patches[0].kfile
        data = tree[kfile].docs[0].data
        if selection.error is not None:
            original = kustomize_build.build(root, directory)
            if original is not None and original.error is None:
                findings.append(Finding(CHECK, Outcome.SKIPPED, Origin(kfile, 1),
                                        f"could not test the patch targets of {directory}: {selection.error}"))
            continue  # the kustomize-build check reports the build's own failure
        failed = False
        for patch in patches:
            key = MARKER.format(dir=number, index=f"{patch.key}-{patch.index}")
            if key in selection.selected:
                continue
            where = tree[kfile].origin(yaml_docs.line_of(data, [patch.key, patch.index, "target"]))
            unknown = _unknown_components(root, patch)
            if unknown is not None:
                findings.append(Finding(
                    CHECK, Outcome.SKIPPED, where,
                    f"the patch with target {patch.describe()} may be meant for the Flux components that `flux "
                    f"bootstrap` writes into gotk-components.yaml beside it, which are not known: {unknown}"))
                continue
            failed = True
            built = ", ".join(selection.objects) or "nothing"
            findings.append(Finding(
                CHECK, Outcome.FAILED, where,
                f"{patch.key}[{patch.index}] of {kfile}: its target ({patch.describe()}) selects no resource of "
                f"`kustomize build {directory}`, and kustomize then skips the patch without a word, so what it "
                f"should change keeps the base's value; fix the target (the build renders: {built})"))
        if not failed:
            findings.append(Finding(CHECK, Outcome.PASSED, Origin(kfile, 1),
                                    f"every targeted patch of {kfile} selects a resource"))
    return findings
