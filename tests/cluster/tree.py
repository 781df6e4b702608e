"""What the cluster tier reads from the tree under test (read only): how each
cluster's ``platform`` source tracks releases, and the one edit the promotion
proof makes to a clone (moving production's pin)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

import yamlload

SOURCE_KINDS = {"OCIRepository", "GitRepository"}


@dataclass(frozen=True)
class PlatformSource:
    file: Path  # relative to the root
    line: int  # 1-based line of the document's ``kind:``
    kind: str
    name: str
    namespace: str
    ref: dict

    def where(self) -> str:
        return f"{self.file}:{self.line}"


def platform_source(root: Path, target: str, name: str = "platform") -> PlatformSource:
    """The source called ``name`` in ``clusters/<target>/``."""
    folder = root / "clusters" / target
    for path in sorted(folder.glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        for doc, line in _documents(text):
            if isinstance(doc, dict) and doc.get("kind") in SOURCE_KINDS \
                    and doc.get("metadata", {}).get("name") == name:
                return PlatformSource(
                    path.relative_to(root), line, doc["kind"], name,
                    doc["metadata"].get("namespace", "flux-system"), dict(doc.get("spec", {}).get("ref", {})),
                )
    raise LookupError(
        f"clusters/{target}/: no GitRepository or OCIRepository named {name!r}; the promotion "
        "proof needs it (CONTRIBUTING.md, The clusters)"
    )


def _documents(text: str):
    """(document, line of its kind:) for each YAML document in ``text``."""
    starts = [0] + [m.end() for m in re.finditer(r"^---[^\n]*\n", text, re.M)]
    for start in starts:
        chunk = text[start:]
        end = re.search(r"^---", chunk, re.M)
        chunk = chunk[: end.start()] if end else chunk
        try:
            doc = yamlload.load(chunk)
        except yaml.YAMLError:
            continue
        kind_at = re.search(r"^kind:", chunk, re.M)
        line = text.count("\n", 0, start + (kind_at.start() if kind_at else 0)) + 1
        yield doc, line


def production_pin(root: Path) -> str:
    """The tag production's platform source is pinned to."""
    source = platform_source(root, "production")
    tag = source.ref.get("tag")
    if source.kind != "OCIRepository" or not tag:
        raise LookupError(
            f"{source.where()}: production's platform source must be an OCIRepository pinned with "
            f"ref.tag (CONTRIBUTING.md, The clusters); found {source.kind} ref {source.ref}"
        )
    return str(tag)


def move_pin(clone: Path, old: str, new: str) -> Path:
    """Rewrite production's pin from ``old`` to ``new`` in a clone. Returns the
    file changed."""
    source = platform_source(clone, "production")
    path = clone / source.file
    text = path.read_text(encoding="utf-8")
    pattern = re.compile(r"^(\s*tag:\s*)([\"']?)" + re.escape(old) + r"\2\s*$", re.M)
    found = pattern.findall(text)
    if len(found) != 1:
        raise LookupError(
            f"{source.where()}: expected one `tag: {old}` line to move the pin, found {len(found)}"
        )
    path.write_text(pattern.sub(lambda m: f"{m.group(1)}{m.group(2)}{new}{m.group(2)}", text), encoding="utf-8")
    return source.file


@dataclass(frozen=True)
class Receiver:
    file: Path  # relative to the root
    line: int
    name: str
    namespace: str
    type: str
    events: tuple[str, ...]
    secret: str
    resources: tuple[tuple[str, str], ...]  # (kind, name)

    def where(self) -> str:
        return f"{self.file}:{self.line}"


def receivers(root: Path, target: str) -> list[Receiver]:
    """The webhook Receivers in ``clusters/<target>/``."""
    found = []
    for path in sorted((root / "clusters" / target).glob("*.yaml")):
        for doc, line in _documents(path.read_text(encoding="utf-8")):
            if isinstance(doc, dict) and doc.get("kind") == "Receiver":
                spec, meta = doc.get("spec") or {}, doc.get("metadata") or {}
                found.append(Receiver(
                    path.relative_to(root), line, meta.get("name", ""), meta.get("namespace", "flux-system"),
                    spec.get("type", ""), tuple(spec.get("events") or ()),
                    (spec.get("secretRef") or {}).get("name", ""),
                    tuple((r.get("kind", ""), r.get("name", "")) for r in spec.get("resources") or ()),
                ))
    return found


def committed_sync_urls(root: Path) -> frozenset[str]:
    """The URLs the tree's ``clusters/*/flux-system/gotk-sync.yaml`` commit
    for the flux-system GitRepository: on a fresh cluster bootstrap applies
    flux-system/ as committed (to install the controllers) before it writes
    and applies its own sync manifests, so for a while the source points
    there."""
    urls = set()
    for path in sorted(Path(root).glob("clusters/*/flux-system/gotk-sync.yaml")):
        for doc, _line in _documents(path.read_text(encoding="utf-8")):
            if isinstance(doc, dict) and doc.get("kind") == "GitRepository":
                url = (doc.get("spec") or {}).get("url")
                if url:
                    urls.add(str(url))
    return frozenset(urls)
