"""The report lists every skip with its reason, tree-wide ones included."""

from __future__ import annotations

from harness.model import Finding, Origin, Outcome
from harness.report import Report


def test_tree_skips_are_listed_with_reason_and_places() -> None:
    report = Report([])
    reason = "ClusterIssuer cert-manager.io/v1: no schema (a cert-manager CRD)"
    report.add([
        Finding("schema", Outcome.SKIPPED, Origin("platform/configs/cluster-issuers.yaml", 5), reason),
        Finding("schema", Outcome.SKIPPED, Origin("platform/configs/other.yaml", 9), reason),
        Finding("schema", Outcome.PASSED, Origin("platform/baseline/namespaces.yaml", 1)),
    ])
    lines = "\n".join(report.lines())
    assert "tree files and pages as a whole: 1 passed, 2 skipped" in lines
    assert f"SKIPPED    platform/configs/cluster-issuers.yaml:5 and 1 more: [schema] {reason}" in lines
