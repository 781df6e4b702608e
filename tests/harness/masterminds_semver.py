"""Versions and version ranges as Flux reads them.

source-controller checks ``spec.ref.semver`` of a GitRepository or an
OCIRepository, and the chart version of a HelmChart (``chart.spec.version``
of a HelmRelease), with the Go library Masterminds/semver v3; so does Helm.
No Python package implements its rules, and they differ from npm's and from
PEP 440 in ways that matter here (``,`` and a space both mean "and", ``~>``
and ``=>`` are accepted, a range without a pre-release skips pre-releases,
``1.x`` is a range). This module implements the rules of its 3.4 release:

- ``parse_version(text)``: a version, read as ``semver.NewVersion`` reads it
  (an optional ``v``, minor and patch may be left out, a pre-release and
  build metadata are checked).
- ``parse_constraint(text)``: a range, read as ``semver.NewConstraint`` reads
  it; what it refuses raises ``SemverError`` with the library's wording
  ("improper constraint: ..."), which is what Flux reports.
- ``Constraint.admits(version)``: ``Constraints.Check``.
- ``Constraint.witness()``: a version the range admits, or None when it
  admits none (``>=2.0.0 <1.0.0``). It tries the versions the range is made
  of and their neighbours (the next patch, minor and major, the lowest
  pre-release of each): a range of comparisons admits something exactly
  when it admits one of those.

Grammar of a range: alternatives separated by ``||``; in each, comparisons
separated by spaces or commas, all of which must hold; a comparison is an
operator (``=``, ``!=``, ``>``, ``<``, ``>=``, ``=>``, ``<=``, ``=<``, ``~``,
``~>``, ``^`` or none) and a version whose parts may be ``x``, ``X`` or
``*``; ``A - B`` means ``>= A, <= B``. A version with a pre-release is
admitted only by an alternative one of whose comparisons names a
pre-release.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field, replace


class SemverError(ValueError):
    """What Masterminds/semver (and so Flux) says about text it refuses."""


# -- versions -------------------------------------------------------------------

_IDENT = r"[0-9A-Za-z\-]+"
_LOOSE_VERSION = re.compile(
    rf"^v?([0-9]+)(\.[0-9]+)?(\.[0-9]+)?(?:-({_IDENT}(?:\.{_IDENT})*))?(?:\+({_IDENT}(?:\.{_IDENT})*))?$", re.ASCII)


def _is_number(part: str) -> bool:
    return part.isdigit() and part.isascii()


@dataclass(frozen=True)
class Version:
    major: int
    minor: int
    patch: int
    pre: str = ""
    metadata: str = field(default="", compare=False)

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        text += f"-{self.pre}" if self.pre else ""
        return text + (f"+{self.metadata}" if self.metadata else "")

    def compare(self, other: Version) -> int:
        """-1, 0 or 1, by semver precedence (build metadata does not count)."""
        for mine, theirs in ((self.major, other.major), (self.minor, other.minor), (self.patch, other.patch)):
            if mine != theirs:
                return 1 if mine > theirs else -1
        if self.pre == other.pre:
            return 0
        if not self.pre:
            return 1
        if not other.pre:
            return -1
        return _compare_pre(self.pre, other.pre)

    def bumped(self, part: str) -> Version:
        if part == "major":
            return Version(self.major + 1, 0, 0)
        if part == "minor":
            return Version(self.major, self.minor + 1, 0)
        return Version(self.major, self.minor, self.patch + 1)


def _compare_pre(mine: str, theirs: str) -> int:
    """Pre-release precedence: identifier by identifier; numbers compare as
    numbers and sort before words; a longer list wins when all else ties."""
    a, b = mine.split("."), theirs.split(".")
    for index in range(max(len(a), len(b))):
        x = a[index] if index < len(a) else ""
        y = b[index] if index < len(b) else ""
        if x == y:
            continue
        if not x or not y:
            return -1 if not x else 1
        if _is_number(x) and _is_number(y):
            return 1 if int(x) > int(y) else -1
        if _is_number(x) != _is_number(y):
            return -1 if _is_number(x) else 1
        return 1 if x > y else -1
    return 0


def parse_version(text: str) -> Version:
    """A version as ``semver.NewVersion`` reads it, or SemverError."""
    match = _LOOSE_VERSION.match(text)
    if match is None:
        raise SemverError("invalid semantic version")
    major, minor, patch, pre, metadata = match.groups()
    pre, metadata = pre or "", metadata or ""
    for identifier in pre.split(".") if pre else []:
        if _is_number(identifier) and len(identifier) > 1 and identifier[0] == "0":
            raise SemverError("version segment starts with 0")
    return Version(int(major), int(minor[1:]) if minor else 0, int(patch[1:]) if patch else 0, pre, metadata)


# -- ranges ----------------------------------------------------------------------

_PART = r"[0-9|x|X|\*]+"  # as the library writes it: `|` is in the class
_CV = (rf"v?({_PART})(\.{_PART})?(\.{_PART})?"
       rf"(-{_IDENT}(?:\.{_IDENT})*)?(\+{_IDENT}(?:\.{_IDENT})*)?")
_CV_PLAIN = re.sub(r"\((?!\?)", "(?:", _CV)  # the same without capturing groups
_OPS = r"=||!=|>|<|>=|=>|<=|=<|~|~>|\^"
_ONE = re.compile(rf"^\s*({_OPS})\s*({_CV})\s*$", re.ASCII)
_RANGE = re.compile(rf"\s*({_CV_PLAIN})\s+-\s+({_CV_PLAIN})\s*", re.ASCII)
_FIND = re.compile(rf"(?:{_OPS})\s*(?:{_CV_PLAIN})", re.ASCII)
_VALID = re.compile(
    rf"^(?:\s*(?:{_OPS})\s*(?:{_CV_PLAIN})\s*)(?:(?:\s+|,\s*)(?:{_OPS})\s*(?:{_CV_PLAIN})\s*)*$", re.ASCII)
_WILD = {"x", "X", "*"}


@dataclass(frozen=True)
class Comparison:
    """One operator and version of a range (``>=1.2``, ``~1.x``)."""

    op: str
    version: Version
    text: str  # the version as written
    dirty: bool = False  # a part is left out or a wildcard
    minor_dirty: bool = False
    patch_dirty: bool = False

    def __str__(self) -> str:
        return self.op + self.text


def _comparison(text: str) -> Comparison:
    match = _ONE.match(text)
    if match is None:
        raise SemverError(f"improper constraint: {text!r}")
    op, written, major, minor, patch, pre = match.group(1, 2, 3, 4, 5, 6)
    pre = pre or ""
    minor_part = (minor or "")[1:]
    patch_part = (patch or "")[1:]
    dirty = minor_dirty = patch_dirty = False
    if major in _WILD:
        dirty, base = True, "0.0.0"
    elif not minor or minor_part in _WILD:
        dirty = minor_dirty = True
        base = f"{major}.0.0"
    elif not patch or patch_part in _WILD:
        dirty = patch_dirty = True
        base = f"{major}{minor}.0"
    else:
        base = f"{major}{minor}{patch}"
    try:
        version = parse_version(base + pre)
    except SemverError:
        raise SemverError("constraint parser error") from None
    return Comparison(op, version, written, dirty, minor_dirty, patch_dirty)


def _rewrite_ranges(text: str) -> str:
    """``A - B`` as ``>= A, <= B`` (each occurrence, in turn)."""
    out = text
    for match in _RANGE.finditer(text):
        out = out.replace(match.group(0), f">= {match.group(1)}, <= {match.group(2)} ", 1)
    return out


def _tilde(v: Version, c: Comparison) -> bool:
    if v.compare(c.version) < 0:
        return False
    con = c.version
    if con.major == 0 and con.minor == 0 and con.patch == 0 and not c.minor_dirty and not c.patch_dirty:
        return True  # ~0.0.0 admits anything
    if v.major != con.major:
        return False
    return v.minor == con.minor or c.minor_dirty


def _caret(v: Version, c: Comparison) -> bool:
    con = c.version
    if v.compare(con) < 0:
        return False
    if con.major > 0 or c.minor_dirty:
        return v.major == con.major
    if v.major > 0:
        return False
    if con.minor > 0 or c.patch_dirty:
        return v.minor == con.minor
    if v.minor > 0:
        return False
    return v.patch == con.patch


def _not_equal(v: Version, c: Comparison) -> bool:
    con = c.version
    if c.dirty:
        if con.major != v.major:
            return True
        if con.minor != v.minor and not c.minor_dirty:
            return True
        if c.minor_dirty:
            return False
        if con.patch != v.patch and not c.patch_dirty:
            return True
        if c.patch_dirty:
            if v.pre or con.pre:
                return _compare_pre(v.pre, con.pre) != 0
            return False
    return v.compare(con) != 0


def _greater(v: Version, c: Comparison) -> bool:
    con = c.version
    if not c.dirty:
        return v.compare(con) > 0
    if v.major != con.major:
        return v.major > con.major
    if c.minor_dirty:
        return False
    if c.patch_dirty:
        return v.minor > con.minor
    return v.compare(con) > 0


def _less_equal(v: Version, c: Comparison) -> bool:
    con = c.version
    if not c.dirty:
        return v.compare(con) <= 0
    if v.major > con.major:
        return False
    return not (v.major == con.major and v.minor > con.minor and not c.minor_dirty)


_CHECKS = {
    "": lambda v, c: _tilde(v, c) if c.dirty else v.compare(c.version) == 0,
    "=": lambda v, c: _tilde(v, c) if c.dirty else v.compare(c.version) == 0,
    "!=": _not_equal,
    ">": _greater,
    "<": lambda v, c: v.compare(c.version) < 0,
    ">=": lambda v, c: v.compare(c.version) >= 0,
    "=>": lambda v, c: v.compare(c.version) >= 0,
    "<=": _less_equal,
    "=<": _less_equal,
    "~": _tilde,
    "~>": _tilde,
    "^": _caret,
}


@dataclass(frozen=True)
class Constraint:
    text: str
    groups: tuple[tuple[Comparison, ...], ...]  # alternatives, each a conjunction

    def admits(self, version: Version | str) -> bool:
        v = parse_version(version) if isinstance(version, str) else version
        for group in self.groups:
            with_pre = any(c.version.pre for c in group)
            if v.pre and not with_pre:
                continue
            if all(_CHECKS[c.op](v, c) for c in group):
                return True
        return False

    def candidates(self) -> list[Version]:
        """The versions the range is made of, and their neighbours."""
        found: list[Version] = [Version(0, 0, 0)]
        for group in self.groups:
            for c in group:
                v = c.version
                release = replace(v, pre="", metadata="")
                near = [v, release, release.bumped("patch"), release.bumped("minor"), release.bumped("major")]
                if v.pre:
                    near.append(replace(v, pre=v.pre + ".0", metadata=""))
                found += near + [replace(n, pre="0") for n in near if not n.pre]
        return found

    def witness(self) -> Version | None:
        """A version the range admits (the lowest of the candidates), or None."""
        admitted = [v for v in self.candidates() if self.admits(v)]
        return min(admitted, key=functools.cmp_to_key(Version.compare)) if admitted else None


def parse_constraint(text: str) -> Constraint:
    """A range as ``semver.NewConstraint`` reads it, or SemverError."""
    rewritten = _rewrite_ranges(text)
    groups = []
    for alternative in rewritten.split("||"):
        if not _VALID.match(alternative):
            raise SemverError(f"improper constraint: {alternative!r}")
        parts = [m.group(0) for m in _FIND.finditer(alternative)] or [alternative]
        groups.append(tuple(_comparison(part) for part in parts))
    return Constraint(text, tuple(groups))
