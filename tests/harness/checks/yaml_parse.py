"""Check: every YAML file of the tree and every manifest block parses
(duplicate keys are errors, as they are for the API server)."""

from __future__ import annotations

from pathlib import Path

from harness.checks import yaml_docs
from harness.model import Context, Finding, Location, Outcome

CHECK = "yaml-parse"


def run(ctx: Context) -> list[Finding]:
    findings: list[Finding] = []
    for parsed in yaml_docs.manifest_blocks(ctx.blocks):
        block = parsed.block
        if parsed.error is not None:
            findings.append(Finding(CHECK, Outcome.FAILED, block.location(parsed.error.line),
                                    f"YAML does not parse: {parsed.error.message}", block))
        else:
            findings.append(Finding(CHECK, Outcome.PASSED, Location(block.fence), "", block))
    for tree_file in yaml_docs.tree(Path(ctx.root)).values():
        if tree_file.error is not None:
            findings.append(Finding(CHECK, Outcome.FAILED, tree_file.origin(tree_file.error.line),
                                    f"YAML does not parse: {tree_file.error.message}"))
        else:
            findings.append(Finding(CHECK, Outcome.PASSED, tree_file.origin(0), ""))
    return findings
