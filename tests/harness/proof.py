"""Holding the checked-by marks to a run: every check a mark names made a
finding for its block (or file), and every check that tested a block is
named by its mark (``tests/test_marks.py``; the mutation tests in
``tests/mutations/test_mark_mutations.py`` show it failing).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from harness.model import Block, Finding, Location, Outcome
from harness.report import BOOKKEEPING, MISSING_TOOL_WORDS
from harness.selection import Check, Mark, Marks, marks


@dataclass
class Proof:
    """What a run's findings say about the marks: ``problems`` fail the run;
    ``unverified`` are claims this run could not make for a missing tool
    (it never counts them as made); ``proven`` counts the claims made."""

    problems: list[str] = field(default_factory=list)
    unverified: list[str] = field(default_factory=list)
    proven: int = 0
    considered: int = 0  # claims whose check ran in this run

    def lines(self) -> list[str]:
        out = [f"checked-by marks: {self.proven} of {self.considered} claims made by this run"
               + (f", {len(self.unverified)} not verifiable here (a tool is missing)" if self.unverified else "")
               + (f"; {len(self.problems)} problems" if self.problems else "")]
        out += [f"    PROBLEM    {p}" for p in self.problems]
        out += [f"    UNVERIFIED {u}" for u in self.unverified]
        return out


def _missing_tool(finding: Finding) -> bool:
    return any(words in finding.message for words in MISSING_TOOL_WORDS)


def _tree_path(where) -> str:
    return str(where.source.path if isinstance(where, Location) and where.source else
               where.page.path if isinstance(where, Location) else where.path)


def prove(blocks: list[Block], findings: list[Finding], ran: Callable[[Check], bool], root: Path,
          marked: dict[tuple[str, int], Mark] | None = None, files: Iterable[str] = (),
          usage: Iterable[str] = ()) -> Proof:
    """Hold every mark to the findings of a run in which the checks ``ran``
    says ran: the marks of ``blocks`` (or ``marked``, which the mutation
    tests alter), and those of the site's views of the tree ``files`` (and
    of the --help text of the ``usage`` scripts' views).

    A block check the mark names must have made a finding for the block; a
    file check, a finding on the file (at one of its lines, or a passing one
    that ``covers`` it; a finding of each cluster named, for the checks
    that hold every cluster's applied objects).
    Passed or failed: a failure fails its own test. And every check that
    tested a block must be named by the block's mark. (Files are not held to
    that: many whole-tree checks point at a file's lines without being about
    the file.)"""
    marked = marks(blocks, root) if marked is None else marked
    by_block: dict[tuple[str, int], list[Finding]] = defaultdict(list)
    on_files: dict[str, list[Finding]] = defaultdict(list)  # whole-tree check -> findings that ran
    tool_missing: dict[str, str] = {}  # whole-tree check -> why it was skipped, when for a missing tool
    for finding in findings:
        if finding.block is not None:
            by_block[(finding.block.page, finding.block.index)].append(finding)
        elif finding.outcome in (Outcome.PASSED, Outcome.FAILED):
            on_files[finding.check].append(finding)
        elif finding.outcome is Outcome.SKIPPED and _missing_tool(finding):
            tool_missing.setdefault(finding.check, finding.message)
    proof = Proof()

    def hold_file_claim(claim: Claim, where: str) -> None:
        check = claim.check
        for cluster in claim.clusters or (None,):
            hits = [f for f in on_files.get(check.name, [])
                    if (claim.path in f.covers or _tree_path(f.where) == claim.path)
                    and (cluster is None or _cluster_of(f) == cluster)]
            if not hits and check.name in tool_missing:
                proof.unverified.append(f"{where}: [{check.name}] {claim.path}: {tool_missing[check.name]}")
                return
            if not hits:
                on = f" on {cluster}" if cluster else ""
                proof.problems.append(
                    f"{where}: its mark names [{check.name}]{on} for {claim.path}, but no [{check.name}] "
                    f"finding{on} is about that file. Fix harness.selection's coverage or the check")
                return
        proof.proven += 1

    for block in blocks:
        key = (block.page, block.index)
        mark = marked.get(key, Mark())
        own = by_block.get(key, [])
        where = f"{block.fence} ({block.lang or 'plain'})"
        for claim in mark.claims:
            check = claim.check
            if not ran(check):
                continue
            proof.considered += 1
            if claim.path is not None:
                hold_file_claim(claim, where)
                continue
            made = [f for f in own if f.check == check.name]
            if any(f.outcome in (Outcome.PASSED, Outcome.FAILED) for f in made):
                proof.proven += 1
            elif any(_missing_tool(f) for f in made):
                proof.unverified.append(f"{where}: [{check.name}] {made[0].message}")
            else:
                said = f"; it said: {made[0].outcome.value}: {made[0].message}" if made else ""
                proof.problems.append(
                    f"{where}: its mark names [{check.name}], but that check made no finding for it{said}. "
                    f"Make the check look at every block harness.selection gives it, or change the selection")
        named = {claim.check.name for claim in mark.claims}
        tested = sorted({f.check for f in own if f.outcome in (Outcome.PASSED, Outcome.FAILED)} - BOOKKEEPING)
        for check_name in tested:
            if check_name not in named:
                proof.problems.append(
                    f"{where}: [{check_name}] tested the block, but its mark does not say so: "
                    f"give the check its entry in harness.selection.BLOCK_CHECKS and select blocks with it")

    marker = Marks(root)
    views = [(path, marker.of_file(path)) for path in files] + [(path, marker.of_usage(path)) for path in usage]
    for path, mark in views:
        for claim in mark.claims:
            if ran(claim.check):
                proof.considered += 1
                hold_file_claim(claim, f"the site's view of {path}")
    return proof


def _cluster_of(finding: Finding) -> str:
    """The cluster a per-cluster finding is about (selection.PER_CLUSTER):
    its passing finding stands at clusters/NAME/flux-system."""
    return os.path.basename(os.path.dirname(_tree_path(finding.where)))


def ran_in(node_ids: Iterable[str]) -> Callable[[Check], bool]:
    """``ran`` for ``prove``: a check ran when its test is among ``node_ids``
    (the run's tests that passed)."""
    ids = list(node_ids)

    def ran(check: Check) -> bool:
        return any(node_id.endswith(check.test) for node_id in ids)

    return ran
