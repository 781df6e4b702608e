"""Check: Flux post-build substitution leaves nothing unresolved.

- On every cluster (``flux_render``): what a Kustomization with
  ``spec.postBuild`` applies has a value or a default for every variable, and
  uses only the forms ``flux_substitute`` implements; what a Kustomization
  without ``postBuild`` applies holds no ``${...}`` (Flux would apply it
  literally).
- In every manifest block: lines the page writes itself (not included from
  the tree, which the cluster check covers) have a default for every variable.
"""

from __future__ import annotations

from pathlib import Path

from harness.checks import flux_render, yaml_docs
from harness.model import Context, Finding, Origin, Outcome

CHECK = "substitution"


def run(ctx: Context) -> list[Finding]:
    findings: list[Finding] = []
    for parsed in yaml_docs.manifest_blocks(ctx.blocks):
        block = parsed.block
        for problem in parsed.missing_vars:
            origin = block.origins[problem.line] if problem.line < len(block.origins) else None
            if origin is not None and origin.path != block.page:
                continue  # included from the tree: checked where the tree is applied
            findings.append(Finding(CHECK, Outcome.FAILED, block.location(problem.line), problem.message, block))
    seen: set[tuple[str, str]] = set()
    renders = flux_render.render_all(Path(ctx.root))
    for render in renders.values():
        for issue in render.issues:
            if issue.check != CHECK:
                continue
            key = (str(issue.where), issue.message)
            if key in seen:
                continue
            seen.add(key)
            findings.append(Finding(CHECK, Outcome.FAILED, issue.where, f"{render.cluster}: {issue.message}"))
    if renders and not any(f.outcome is Outcome.FAILED for f in findings):
        findings.append(Finding(CHECK, Outcome.PASSED, Origin("clusters", 1),
                                f"every variable resolves on {', '.join(sorted(renders))}"))
    return findings
