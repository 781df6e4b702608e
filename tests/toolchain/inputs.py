"""What the keyed recipes read besides versions.yaml: the chart versions the
tree pins, and digests of files (the prebuilt folder's archives). A leaf:
pins and the builders both read through it."""

from __future__ import annotations

import functools
from pathlib import Path

import yamlload


@functools.lru_cache(maxsize=None)
def file_digest(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@functools.lru_cache(maxsize=16)
def _oci_tags(stamp: tuple[tuple[str, int], ...]) -> tuple[tuple[str, str], ...]:
    """(url, tag) of every OCIRepository with a tag in the files of
    ``stamp`` ((path, mtime) each: a file that changes is read again)."""
    found = []
    for name, _mtime in stamp:
        for doc in yamlload.load_all(Path(name).read_text(encoding="utf-8")):
            spec = (doc or {}).get("spec") or {} if isinstance(doc, dict) else {}
            tag = (spec.get("ref") or {}).get("tag") if isinstance(spec.get("ref"), dict) else None
            if (doc or {}).get("kind") == "OCIRepository" and tag:
                found.append((str(spec.get("url", "")), str(tag)))
    return tuple(found)


def chart_pin(chart: str, root: Path) -> str:
    """The tag the tree's chart source for ``chart`` (oci://host/path) pins:
    the chart versions live in the tree, so the images of its programs are
    made at that version (``platform/controllers/cert-manager.yaml``)."""
    host, path = chart.removeprefix("oci://").split("/", 1)
    files = tuple(file for folder in ("platform", "apps") for file in sorted((Path(root) / folder).rglob("*.yaml")))
    stamp = tuple((str(file), file.stat().st_mtime_ns) for file in files)
    for url, tag in _oci_tags(stamp):
        if url.endswith(f"/{path}") and host in url:
            return tag
    raise ValueError(f"no chart source in platform/ or apps/ pins a tag of {chart}")
