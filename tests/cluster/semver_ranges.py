"""Whether a version satisfies a range of the form the tree writes
(``>=6.9.0 <6.10.0``): comparisons joined by spaces or commas, all of which
must hold."""

from __future__ import annotations

import re

_CMP = re.compile(r"(>=|<=|>|<|=|!=)?\s*v?(\d+)(?:\.(\d+))?(?:\.(\d+))?")


def _key(version: str) -> tuple[int, int, int]:
    m = re.match(r"v?(\d+)\.(\d+)\.(\d+)", version)
    if not m:
        raise ValueError(f"not a version: {version!r}")
    return tuple(int(x) for x in m.groups())  # type: ignore[return-value]


def admits(constraint: str, version: str) -> bool:
    got = _key(version)
    for part in re.split(r"[\s,]+", constraint.strip()):
        if not part:
            continue
        m = _CMP.fullmatch(part)
        if not m:
            raise ValueError(f"cannot read the range {constraint!r} (at {part!r})")
        op = m.group(1) or "="
        want = tuple(int(x or 0) for x in m.groups()[1:])
        ok = {">=": got >= want, "<=": got <= want, ">": got > want, "<": got < want,
              "=": got == want, "!=": got != want}[op]
        if not ok:
            return False
    return True
