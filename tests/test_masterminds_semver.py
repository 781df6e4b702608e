"""The version-range rules of harness.masterminds_semver, on the cases
Masterminds/semver v3 documents (its README's range table and the behaviour
its tests pin down), and the texts it refuses. Every (range, version) answer
below was compared with what the Go library (v3.4.0) itself answers."""

from __future__ import annotations

import pytest

from harness.masterminds_semver import SemverError, parse_constraint, parse_version

ADMITS = [
    # (range, version, admitted)
    (">=1.0.0 <2.0.0", "1.0.0", True), (">=1.0.0 <2.0.0", "1.9.9", True), (">=1.0.0 <2.0.0", "2.0.0", False),
    (">=1.0.0, <2.0.0", "1.5.0", True), ("=> 1.2, =< 1.4", "1.4.9", True),
    (">= 1.2, < 3.0.0 || >= 4.2.3", "3.1.0", False), (">= 1.2, < 3.0.0 || >= 4.2.3", "4.3.0", True),
    ("1.2 - 1.4.5", "1.4.5", True), ("1.2 - 1.4.5", "1.4.6", False), ("1.2 - 1.4.5", "1.1.9", False),
    ("2.3.4 - 4.5", "4.5.9", True),
    ("1.2.x", "1.2.9", True), ("1.2.x", "1.3.0", False), (">= 1.2.x", "1.2.0", True), ("<= 2.x", "2.9.9", True),
    ("<= 2.x", "3.0.0", False), ("*", "9.9.9", True), ("*", "1.0.0-beta", False),
    ("~1.2.3", "1.2.9", True), ("~1.2.3", "1.3.0", False), ("~1", "1.9.0", True), ("~1", "2.0.0", False),
    ("~2.3", "2.3.9", True), ("~2.3", "2.4.0", False), ("~1.x", "1.9.0", True), ("~>1.4", "1.4.7", True),
    ("^1.2.3", "1.9.0", True), ("^1.2.3", "2.0.0", False), ("^1.2.x", "1.2.0", True), ("^2.3", "2.9.0", True),
    ("^0.2.3", "0.2.9", True), ("^0.2.3", "0.3.0", False), ("^0.0.3", "0.0.3", True), ("^0.0.3", "0.0.4", False),
    ("^0.0", "0.0.9", True), ("^0.0", "0.1.0", False), ("^0", "0.9.9", True), ("^0", "1.0.0", False),
    ("=2.0", "2.0.1", True), ("4.1", "4.1.0", True), ("!=4.1.0", "4.1.1", True), ("!=4.1", "4.1.1", False),
    ("!=4.1", "5.1.0", True), ("<1.1", "1.1.1", False), ("<=1.1", "1.1.1", True), (">1.1", "1.1.0", False),
    (">11.1", "11.1.1", False), (">11.1", "11.2.1", True), (">0", "0.0.1-alpha", False),
    (">0.0.0-0", "0.0.0-alpha", True), (">1.2.3-alpha.1", "1.2.3-alpha.2", True),
    # a range without a pre-release skips pre-releases; one with a pre-release admits them, in that alternative
    (">=6.15.0 <6.16.0", "6.15.1-rc.1", False), (">=6.16.0-0 <6.17.0-0", "6.16.0-pr.17.12", True),
    (">=6.16.0-0 <6.17.0-0", "6.16.3", True), (">=6.16.0-0 <6.17.0-0", "6.17.0", False),
    (">=6.16.0-pr.17 <6.16.0-pr.18", "6.16.0-pr.17.9", True), (">=6.16.0-pr.17 <6.16.0-pr.18", "6.16.0-pr.18", False),
    ("v1.2", "1.2.0", True), ("1.0.0", "1.0.0+build.5", True),
]


@pytest.mark.parametrize(("text", "version", "admitted"), ADMITS)
def test_ranges_admit_what_masterminds_admits(text: str, version: str, admitted: bool) -> None:
    assert parse_constraint(text).admits(version) is admitted


@pytest.mark.parametrize("text", [
    ">=1.0.0 && <2.0.0", "1.0.0..2.0.0", "", "foo", ">=1.0.0 <2.0.0 |", "> = 1.0", "1.2.3.4", ">=1.0.0-", "latest",
    "1|2",
])
def test_what_flux_rejects_is_rejected(text: str) -> None:
    with pytest.raises(SemverError, match="improper constraint|constraint parser error"):
        parse_constraint(text)


def test_versions_are_read_as_newversion_reads_them() -> None:
    assert str(parse_version("v1.2")) == "1.2.0"
    assert parse_version("1.2.3-alpha.10").compare(parse_version("1.2.3-alpha.9")) == 1
    assert parse_version("1.2.3-alpha").compare(parse_version("1.2.3-alpha.0")) == -1
    assert parse_version("1.2.3-1").compare(parse_version("1.2.3-alpha")) == -1
    assert parse_version("1.2.3").compare(parse_version("1.2.3-rc.1")) == 1
    assert parse_version("1.0.0+a").compare(parse_version("1.0.0+b")) == 0
    for text in ("1.2.3-01", "latest", "1.2.3.4", ""):
        with pytest.raises(SemverError):
            parse_version(text)


@pytest.mark.parametrize(("text", "witness"), [
    (">=1.0.0 <2.0.0", "1.0.0"), (">1.2.3", "1.2.4"), ("~1.2 !=1.2.0", "1.2.1"), (">=6.16.0-0 <6.17.0-0", "6.16.0-0"),
    ("<1.0.0 || >=3", "0.0.0"), ("!=0.0.0", "0.0.1"),
    (">=2.0.0 <1.0.0", None), (">=1.0.0 <1.0.0", None), (">1.2.3 <1.2.4", None), ("~1.2 !=1.2.0 <1.2.1", None),
    (">=1.0.0 <1.0", None),
])
def test_the_witness_is_a_version_the_range_admits_or_none(text: str, witness: str | None) -> None:
    found = parse_constraint(text).witness()
    assert (str(found) if found else None) == witness
