"""Compare what a block printed with the transcript a page shows.

Both sides are normalised before comparing:

- lines that start with a ``$ `` prompt are the commands, not output, and are
  dropped from the expected side;
- values only this run has become the name the page gives them: the cluster
  tier passes its own git and registry addresses and ``HOME``, which print
  as ``${PLATFORM_GIT_URL}``, ``${PLATFORM_OCI_URL}``, ``${HOME}`` (a page
  writes them so, as the reader exported them);
- timestamps (``2026-12-04T23:10:42Z``) become ``<time>``; ages (``5s``,
  ``3m12s``, ``2d``) become ``<age>``; hex hashes of 7+ digits (git SHAs,
  ``sha256:...`` digests) become ``<hash>``; a page may write those
  placeholders itself;
- runs of spaces become one (column widths follow the ages), trailing blank
  lines go;
- with the ``unordered`` option both sides are sorted first;
- a line ``...`` in the expected output stands for any number of lines.
"""

from __future__ import annotations

import difflib
import re

from harness.model import Block, Finding, Outcome

TIME = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?(?: UTC)?")
AGE = re.compile(r"(?<![\w.:/-])\d+(?:ms|[smhdy])(?:\d+[smh])*(?![\w.:/-])")
HASH = re.compile(r"(?<![0-9a-zA-Z])[0-9a-f]{7,64}(?![0-9a-zA-Z])")
SPACES = re.compile(r"[ \t]+")
ELLIPSIS = "..."


def placeholders(line: str, run_values: dict[str, str] | None = None) -> str:
    """``line`` with the run's own values under their names and timestamps,
    hashes and ages as ``<time>``, ``<hash>``, ``<age>``."""
    for value, name in sorted((run_values or {}).items(), key=lambda item: -len(item[0])):
        if value:
            line = line.replace(value, name)
    return AGE.sub("<age>", HASH.sub("<hash>", TIME.sub("<time>", line)))


def as_page_shows(text: str, run_values: dict[str, str] | None = None) -> str:
    """What a block printed, written the way a page's transcript shows it
    (placeholders in, columns kept): the text to paste into an ``output`` block."""
    lines = [placeholders(line, run_values).rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    return "\n".join(lines).strip("\n") + "\n"


def normalise(text: str, drop_prompts: bool = False, run_values: dict[str, str] | None = None) -> list[str]:
    """The lines of ``text`` as compared. ``run_values`` maps a value only
    this run has (an address, a folder) to the name a page shows for it."""
    lines = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if drop_prompts and line.startswith("$ "):
            continue
        lines.append(SPACES.sub(" ", placeholders(line, run_values)).strip())
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    return lines


def matches(expected: list[str], actual: list[str]) -> int | None:
    """None when ``actual`` matches ``expected`` (with ``...`` wildcards),
    else the index of the first expected line that does not match."""
    pattern = "".join(
        r"(?:.*\n)*?" if line == ELLIPSIS else re.escape(line) + r"\n" for line in expected
    )
    if re.fullmatch(pattern, "".join(a + "\n" for a in actual)):
        return None
    for i, (e, a) in enumerate(zip(expected, actual)):
        if e == ELLIPSIS:
            return None if i == len(expected) - 1 else i + 1
        if e != a:
            return i
    return min(len(expected), len(actual)) if len(expected) != len(actual) else 0


def compare(block: Block, output: str, run_values: dict[str, str] | None = None) -> Finding:
    """``run_values``: see ``normalise``; applied to what the block printed."""
    expected = normalise(block.text, drop_prompts=True)
    actual = normalise(output, run_values=run_values)
    if block.options.get("unordered") == "true":
        expected, actual = sorted(expected), sorted(actual)
    # expected lines index -> block text offsets (prompt lines dropped)
    offsets = [i for i, line in enumerate(block.text.split("\n")) if not line.startswith("$ ")]
    bad = matches(expected, actual)
    if bad is None:
        return Finding("output", Outcome.PASSED, block.location(0), "", block)
    offset = offsets[bad] if bad < len(offsets) and block.options.get("unordered") != "true" else 0
    diff = "\n".join(
        "        " + d for d in difflib.unified_diff(expected, actual, "shown on the page", "printed", lineterm="", n=1)
    )
    return Finding(
        "output", Outcome.FAILED, block.location(offset),
        "the output shown differs from what the block before it prints (after normalising the run's own "
        "addresses, timestamps, ages, hashes, spacing): update the page's transcript, or mark varying order "
        "with 'unordered'\n" + diff,
        block,
    )
