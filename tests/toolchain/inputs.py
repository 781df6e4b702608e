"""What the keyed recipes read besides versions.yaml: the chart versions the
tree pins, and digests of files (the prebuilt folder's archives). A leaf:
pins and the builders both read through it."""

from __future__ import annotations

import functools
from pathlib import Path

import yaml


@functools.lru_cache(maxsize=None)
def file_digest(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def chart_pin(chart: str, root: Path) -> str:
    """The tag the tree's chart source for ``chart`` (oci://host/path) pins:
    the chart versions live in the tree, so the images of its programs are
    made at that version (``platform/controllers/cert-manager.yaml``)."""
    host, path = chart.removeprefix("oci://").split("/", 1)
    for folder in ("platform", "apps"):
        for file in sorted((Path(root) / folder).rglob("*.yaml")):
            for doc in yaml.safe_load_all(file.read_text(encoding="utf-8")):
                spec = (doc or {}).get("spec") or {} if isinstance(doc, dict) else {}
                url = str(spec.get("url", ""))
                if (doc or {}).get("kind") == "OCIRepository" and url.endswith(f"/{path}") and host in url:
                    tag = (spec.get("ref") or {}).get("tag")
                    if tag:
                        return str(tag)
    raise ValueError(f"no chart source in platform/ or apps/ pins a tag of {chart}")
