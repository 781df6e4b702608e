"""Go's ``time.ParseDuration``, for the durations Flux objects carry
(``1m0s``, ``10m``, ``90s``, ``1h30m``, ``500ms``).

A duration is an optional sign and one or more decimal numbers, each with a
unit: ``ns``, ``us`` (or ``µs``/``μs``), ``ms``, ``s``, ``m``, ``h``. ``0``
alone is zero. Anything else is not a duration.
"""

from __future__ import annotations

import re

UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def seconds(text: str) -> float | None:
    """The duration ``text`` in seconds, or None when Go would not parse it."""
    text = str(text).strip()
    sign = 1.0
    if text[:1] in "+-" and text:
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    if text == "0":
        return 0.0
    if not text:
        return None
    total, pos = 0.0, 0
    while pos < len(text):
        match = _PART.match(text, pos)
        if match is None:
            return None
        total += float(match.group(1)) * UNITS[match.group(2)]
        pos = match.end()
    return sign * total


def show(value: float) -> str:
    """``value`` seconds the way Go prints a duration (``15m0s``, ``1h0m0s``, ``90ms``)."""
    if value < 1 and value != 0:
        return f"{value * 1000:g}ms"
    hours, rest = divmod(value, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{secs:g}s"
    if hours or minutes:
        text = f"{int(minutes)}m" + text
    if hours:
        text = f"{int(hours)}h" + text
    return text
