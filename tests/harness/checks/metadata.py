"""Block metadata: every metadata comment is well formed, and every skipped
block says why (the reason is listed in the report)."""

from __future__ import annotations

from harness.model import Context, Finding, Location, Mode, Outcome


def run(ctx: Context) -> list[Finding]:
    findings: list[Finding] = []
    for block in ctx.blocks:
        where = Location(block.fence)
        for error in block.errors:
            findings.append(Finding("metadata", Outcome.FAILED, where, error, block))
        if block.mode is Mode.SKIP and not block.errors:
            reason = block.options.get("reason", "")
            findings.append(Finding("metadata", Outcome.SKIPPED, where, f"skip: {reason}", block))
    return findings
