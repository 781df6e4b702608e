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


def _block(page: str, index: int, mode, text: str = "echo hi"):
    from harness.model import Block, Mode

    return Block(page, index, "bash" if mode is Mode.CLUSTER else "text", "", text, [Origin(page, 10 + index)],
                 Origin(page, 9 + index), mode=mode)


def _cluster_findings():
    from harness.model import Mode

    ran, shown, failed, later, not_shown = (_block("docs/a.md", 0, Mode.CLUSTER), _block("docs/a.md", 1, Mode.OUTPUT),
                                            _block("docs/a.md", 2, Mode.CLUSTER), _block("docs/a.md", 4, Mode.CLUSTER),
                                            _block("docs/a.md", 5, Mode.OUTPUT))
    return [ran, shown, failed, later, not_shown], [
        Finding("cluster", Outcome.PASSED, ran.location(0), "ran on staging", ran),
        Finding("output", Outcome.PASSED, shown.location(0), "", shown),
        Finding("cluster", Outcome.FAILED, failed.location(0), "failed on staging", failed),
        Finding("cluster", Outcome.SKIPPED, later.location(0), "not run: the block at docs/a.md:11 failed first", later),
        Finding("output", Outcome.SKIPPED, not_shown.location(0), "not compared: its block did not run", not_shown),
    ]


def test_the_cluster_tier_counts_what_it_ran_per_page() -> None:
    """A run of the cluster tier alone: no 0/0 figure, but the blocks it ran
    and the outputs it compared, per page."""
    _blocks, findings = _cluster_findings()
    report = Report([])
    report.add(findings)
    lines = report.lines()
    assert ("cluster tier: ran 2 of 3 blocks on 1 page (1 passed, 1 failed, 1 not run) and compared 1 of 2 "
            "outputs (1 matched, 0 differ, 1 not compared)") in lines
    assert any(line.startswith("    docs/a.md: ran 2 of 3 blocks (1 passed") for line in lines)
    coverage = [line for line in lines if line.startswith("coverage:")]
    assert len(coverage) == 1 and "the offline tier did not run in this session" in coverage[0]
    assert "0/0" not in "\n".join(lines)


def test_one_coverage_line_for_both_tiers() -> None:
    blocks, findings = _cluster_findings()
    report = Report(blocks)
    report.add(findings)
    coverage = [line for line in report.lines() if line.startswith("coverage:")]
    assert coverage == ["coverage: 3/5 blocks tested (60%), the offline and cluster tiers together (the cluster tier "
                        "ran 2 of 3 blocks on 1 page (1 passed, 1 failed, 1 not run) and compared 1 of 2 outputs "
                        "(1 matched, 0 differ, 1 not compared))"]
