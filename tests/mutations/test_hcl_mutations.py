"""Mutation tests of the HCL check (harness.checks.hcl_format): a small .tf
file and an hcl block pass; a syntax error fails at the line HCL names, and
a layout the formatter would change fails at its first changed line, in the
tree file and, for a block that includes it, at the page line too."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import tools
from harness.checks import hcl_format
from harness.model import Block, Context, Mode, Origin, Outcome

pytestmark = pytest.mark.skipif(tools.find(hcl_format.TOOL) is None,
                                reason=tools.missing_reason(hcl_format.TOOL))

TF = "create/terraform/main.tf"
GOOD = """\
resource "kubernetes_namespace" "flux_system" {
  metadata {
    name = "flux-system"
  }
}

resource "kubernetes_config_map" "cluster_vars" {
  metadata {
    name      = "cluster-vars"
    namespace = kubernetes_namespace.flux_system.metadata[0].name
  }
}
"""


def tree(tmp_path: Path, text: str) -> Path:
    root = tmp_path / "tree"
    (root / TF).parent.mkdir(parents=True)
    (root / TF).write_text(text)
    return root


def included(text: str) -> Block:
    """A page block that includes the whole file, as the site renders it."""
    lines = text.rstrip("\n").split("\n")
    return Block(page="docs/x.md", index=0, lang="hcl", attrs="", text="\n".join(lines),
                 origins=[Origin(TF, n) for n in range(1, len(lines) + 1)], fence=Origin("docs/x.md", 10),
                 mode=Mode.HCL, page_lines=[11] * len(lines))


def failures(findings) -> list[str]:
    return [str(f) for f in findings if f.outcome is Outcome.FAILED]


def test_a_formatted_file_and_block_pass(tmp_path):
    root = tree(tmp_path, GOOD)
    findings = hcl_format.run(Context(root=root, blocks=[included(GOOD)]))
    assert failures(findings) == []
    assert [f.where for f in findings if f.outcome is Outcome.PASSED and f.block is None] == [Origin(TF, 1)]
    assert [f for f in findings if f.outcome is Outcome.PASSED and f.block is not None]


def test_a_syntax_error_fails_at_its_line(tmp_path):
    broken = GOOD.replace('    name      = "cluster-vars"\n', '    name      = \n')
    root = tree(tmp_path, broken)
    found = failures(hcl_format.run(Context(root=root, blocks=[included(broken)])))
    assert any(f.startswith(f"{TF}:9: [hcl] HCL error:") for f in found), found
    assert any(f.startswith(f"docs/x.md:11 ({TF}:9): [hcl] HCL error:") for f in found), found


def test_a_layout_the_formatter_would_change_fails_at_its_line(tmp_path):
    unformatted = GOOD.replace("    name      = \"cluster-vars\"", "    name = \"cluster-vars\"")
    root = tree(tmp_path, unformatted)
    found = failures(hcl_format.run(Context(root=root, blocks=[])))
    assert found == [f"{TF}:9: [hcl] not laid out as HCL's formatter lays it out: `name = \"cluster-vars\"` would "
                     f"be `name      = \"cluster-vars\"`; fix it in {TF} (`hclfmt -w {TF}` or `terraform fmt` lays "
                     f"it out)"], found
