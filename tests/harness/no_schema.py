"""The kinds the manifest checks have no schema for (``schemas/no-schema.yaml``),
each with the reason a reader can check.

Its own small module, so that what reads the list without validating anything
(the "checked by" mark, ``harness.selection``, which the site build runs) does
not load the JSON-schema libraries the schema check needs.
"""

from __future__ import annotations

import functools
from pathlib import Path

import yamlload

NO_SCHEMA_FILE = Path(__file__).resolve().parent / "schemas" / "no-schema.yaml"


@functools.lru_cache(maxsize=None)
def _listed(path: str = str(NO_SCHEMA_FILE)) -> dict[tuple[str, str], str]:
    with open(path, encoding="utf-8") as handle:
        data = yamlload.load(handle) or {}
    listed = {}
    for entry in data.get("kinds") or []:
        listed[(entry["apiVersion"], entry["kind"])] = str(entry["reason"]).strip()
    return listed


def reason(api_version: str, kind: str) -> str | None:
    """Why objects of this kind are not validated, or None when they are."""
    return _listed().get((api_version, kind))
