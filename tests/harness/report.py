"""Collect findings and print the summary a reader acts on.

Per page: blocks found, which checks tested them, how many passed, failed or
were skipped (with the reason), then the coverage figure
``blocks tested / blocks shown`` and every check skipped for a missing tool.
A block counts as *tested* when at least one check that looks at its content
passed or failed on it (resolving its include or reading its metadata does
not count).
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict

from harness.model import Block, Finding, Location, Mode, Origin, Outcome

# Checks that look at how a block is written, not at what it says.
BOOKKEEPING = {"metadata", "snippets", "macros"}
# How a skip for a missing tool reads (see harness.tools.missing_reason).
MISSING_TOOL_WORDS = ("not found in", "not installed", "missing tool")


def fail_on(findings: list[Finding]) -> None:
    """``pytest.fail`` with every FAILED finding, one per line as
    ``LOCATION: [check] message``; nothing when none failed."""
    failed = [f for f in findings if f.outcome is Outcome.FAILED]
    if failed:
        import pytest

        lines = [str(f) for f in failed]
        pytest.fail(f"{len(failed)} failed:\n" + "\n".join(lines), pytrace=False)


def block_key(block: Block) -> tuple[str, int]:
    return block.page, block.index


def shown_on_pages(findings: list[Finding], blocks: list[Block]) -> list[Finding]:
    """Findings of whole-tree checks (a tree file and line) with the page
    line added where a page shows that tree line, as block findings name
    both: ``docs/x.md:42 (clusters/production/platform.yaml:7)``. The first
    page (in page order) that shows the line is named."""
    shown: dict[tuple[str, int], Location] = {}
    for block in blocks:
        for offset, origin in enumerate(block.origins):
            if origin.path != block.page:
                shown.setdefault((origin.path, origin.line), block.location(offset))
    if not shown:
        return findings
    out = []
    for finding in findings:
        where = finding.where
        if finding.block is None and isinstance(where, Origin) and (where.path, where.line) in shown:
            finding = dataclasses.replace(finding, where=shown[(where.path, where.line)])
        out.append(finding)
    return out


@dataclasses.dataclass
class ClusterTier:
    """What the cluster tier ran of the pages: per page, its blocks (passed,
    failed, not run) and the outputs shown after them (matched, differing,
    not compared)."""

    pages: dict[str, Counter]

    @property
    def ran(self) -> bool:
        return bool(self.pages)

    def total(self) -> Counter:
        return sum(self.pages.values(), Counter())

    def summary(self, counts: Counter | None = None) -> str:
        c = counts if counts is not None else self.total()
        ran = c["block passed"] + c["block failed"]
        compared = c["output passed"] + c["output failed"]
        pages = "" if counts is not None else f" on {len(self.pages)} page{'s' if len(self.pages) != 1 else ''}"
        return (f"{ran} of {ran + c['block skipped']} blocks{pages} ({c['block passed']} passed, "
                f"{c['block failed']} failed, {c['block skipped']} not run) and compared {compared} of "
                f"{compared + c['output skipped']} outputs ({c['output passed']} matched, {c['output failed']} "
                f"differ, {c['output skipped']} not compared)")

    def lines(self) -> list[str]:
        if not self.ran:
            return []
        out = [f"cluster tier: ran {self.summary()}"]
        for page, counts in sorted(self.pages.items()):
            out.append(f"    {page}: ran {self.summary(counts)}")
        return out


class Report:
    def __init__(self, blocks: list[Block] | None = None) -> None:
        self.blocks: list[Block] = list(blocks or [])
        self.findings: list[Finding] = []
        # The tests whose call passed, by node id: which checks this run
        # made, for the checked-by marks' proof.
        self.passed_tests: set[str] = set()
        # The checked-by marks held to this run's findings (harness.proof.prove),
        # once tests/test_marks.py (or, on several workers, the controlling process) did.
        self.proof = None

    def add(self, findings: list[Finding]) -> list[Finding]:
        """Record findings (tree findings named on the pages that show their
        line, ``shown_on_pages``); returns them as recorded."""
        findings = shown_on_pages(findings, self.blocks)
        self.findings.extend(findings)
        return findings

    # -- summarising -----------------------------------------------------------

    def by_block(self) -> dict[tuple[str, int], list[Finding]]:
        grouped: dict[tuple[str, int], list[Finding]] = defaultdict(list)
        for finding in self.findings:
            if finding.block is not None:
                grouped[block_key(finding.block)].append(finding)
        return grouped

    @staticmethod
    def tested(findings: list[Finding]) -> bool:
        return any(
            f.outcome in (Outcome.PASSED, Outcome.FAILED) and f.check not in BOOKKEEPING for f in findings
        )

    @staticmethod
    def why_untested(block: Block, findings: list[Finding]) -> str:
        if block.mode is Mode.SKIP:
            return f"skip: {block.options.get('reason', '(no reason given)')}"
        skipped = [f for f in findings if f.outcome is Outcome.SKIPPED]
        if skipped:
            return f"[{skipped[0].check}] {skipped[0].message}"
        if block.mode is Mode.NONE:
            return f"{block.lang or 'plain'} blocks are not tested"
        if block.mode is Mode.CLUSTER:
            return "run by the cluster tier only"
        if block.mode is Mode.OUTPUT:
            return "the output of a cluster block: compared by the cluster tier only"
        return f"no check ran on this {block.mode.value} block"

    def cluster_tier(self) -> ClusterTier:
        """The cluster tier's findings on page blocks (``check`` cluster), and
        the output comparisons of the blocks shown after them."""
        cluster_blocks = {block_key(f.block) for f in self.findings if f.check == "cluster" and f.block is not None}
        pages: dict[str, Counter] = defaultdict(Counter)
        for f in self.findings:
            if f.block is None or f.outcome is Outcome.WARNING:
                continue
            if f.check == "cluster":
                pages[f.block.page][f"block {f.outcome.value}"] += 1
            elif f.check == "output" and (f.block.page, f.block.index - 1) in cluster_blocks:
                pages[f.block.page][f"output {f.outcome.value}"] += 1
        return ClusterTier(dict(pages))

    def lines(self) -> list[str]:
        out: list[str] = []
        grouped = self.by_block()
        pages: dict[str, list[Block]] = defaultdict(list)
        for block in self.blocks:
            pages[block.page].append(block)
        tested_total = 0
        untested_reasons: Counter[str] = Counter()
        for page in sorted(pages):
            blocks = pages[page]
            checks: Counter[str] = Counter()
            counts: Counter[str] = Counter()
            details: list[str] = []
            for block in blocks:
                findings = grouped.get(block_key(block), [])
                for check in sorted({f.check for f in findings if f.outcome is not Outcome.SKIPPED}):
                    checks[check] += 1
                failed = [f for f in findings if f.outcome is Outcome.FAILED]
                if self.tested(findings):
                    tested_total += 1
                    counts["tested"] += 1
                    counts["failed" if failed else "passed"] += 1
                elif failed:
                    counts["failed"] += 1
                    untested_reasons["failed before any content check (see FAILED above)"] += 1
                else:
                    reason = self.why_untested(block, findings)
                    skipped = block.mode is Mode.SKIP or any(f.outcome is Outcome.SKIPPED for f in findings)
                    kind = "skipped" if skipped else "not tested"
                    counts[kind] += 1
                    untested_reasons[f"{kind}: {reason}" if skipped else f"{kind}: {block.lang or 'plain'}: {reason}"] += 1
                    details.append(f"    {kind.upper():10} {block.fence} {block.lang or 'plain'}: {reason}")
                for f in failed:
                    details.append(f"    FAILED     {f}")
                for f in findings:
                    if f.outcome is Outcome.WARNING:
                        details.append(f"    WARNING    {f}")
            by = ", ".join(f"{c} {n}" for c, n in sorted(checks.items())) or "no check"
            out.append(
                f"{page}: {len(blocks)} blocks, {counts['tested']} tested ({by}); "
                f"{counts['passed']} passed, {counts['failed']} failed, "
                f"{counts['skipped']} skipped, {counts['not tested']} not tested"
            )
            out.extend(details)

        tree = [f for f in self.findings if f.block is None]
        if tree:
            tally = Counter(f.outcome.value for f in tree)
            out.append("tree files and pages as a whole: " + ", ".join(f"{n} {k}" for k, n in sorted(tally.items())))
            for f in tree:
                if f.outcome in (Outcome.FAILED, Outcome.WARNING):
                    out.append(f"    {f.outcome.value.upper():10} {f}")
            # Skips are listed too, one line per reason, with where it applied.
            skips: dict[tuple[str, str], list[str]] = defaultdict(list)
            for f in tree:
                if f.outcome is Outcome.SKIPPED:
                    skips[(f.check, f.message)].append(str(f.where))
            for (check, message), places in sorted(skips.items()):
                more = f" and {len(places) - 1} more" if len(places) > 1 else ""
                out.append(f"    {'SKIPPED':10} {places[0]}{more}: [{check}] {message}")

        cluster = self.cluster_tier()
        out.extend(cluster.lines())
        shown = len(self.blocks)
        if not shown and cluster.ran:
            out.append("coverage: the offline tier did not run in this session, so there is no figure for the "
                       f"site's blocks; the cluster tier ran {cluster.summary()} (`nox -s e2e` runs both tiers)")
        else:
            percent = f" ({100 * tested_total / shown:.0f}%)" if shown else ""
            both = f", the offline and cluster tiers together (the cluster tier ran {cluster.summary()})" \
                if cluster.ran else ""
            out.append(f"coverage: {tested_total}/{shown} blocks tested{percent}{both}")
        for reason, n in sorted(untested_reasons.items()):
            out.append(f"    {n:3} {reason}")

        if self.proof is not None:
            out.extend(self.proof.lines())

        skipped = Counter((f.check, f.message) for f in self.findings if f.outcome is Outcome.SKIPPED)
        missing = {k: n for k, n in skipped.items() if any(w in k[1] for w in MISSING_TOOL_WORDS)}
        if missing:
            out.append("checks skipped for a missing tool:")
            for (check, message), n in sorted(missing.items()):
                out.append(f"    [{check}] {message} ({n}x)")
        return out
