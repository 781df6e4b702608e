"""Mutation tests of the workflow checks (harness.checks.workflows): a small
release workflow passes; an expression that names an undefined input, a
`run:` script shellcheck objects to, a permission that does not exist, and
an installed tool at another version than versions.yaml pins each fail at
their line, in the file and in a page block that shows it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yamlload

from harness import tools
from harness.checks import workflows
from harness.model import PROJECT_ROOT, Block, Context, Mode, Origin, Outcome

needs_actionlint = pytest.mark.skipif(tools.find(workflows.TOOL) is None,
                                      reason=tools.missing_reason(workflows.TOOL))

NAME = ".github/workflows/release.yaml"
VERSIONS = yamlload.load((PROJECT_ROOT / "versions.yaml").read_text(encoding="utf-8"))
FLUX = VERSIONS["flux"]["version"]
COSIGN = VERSIONS["tools"]["cosign"]["version"]
WORKFLOW = f"""\
name: release
on:
  workflow_dispatch:
    inputs:
      version:
        required: true
        type: string
permissions: {{}}
jobs:
  release:
    runs-on: ubuntu-24.04
    permissions:
      contents: write
      id-token: write
    steps:
      - uses: actions/checkout@v5
      - uses: fluxcd/flux2/action@v{FLUX}
        with:
          version: {FLUX}
      - uses: sigstore/cosign-installer@v4.1.2
        with:
          cosign-release: {COSIGN}
      - name: Release
        env:
          VERSION: ${{{{ inputs.version }}}}
        run: ./snippets/platform-release.sh "$VERSION" --keyless
"""


def tree(tmp_path: Path, text: str) -> Path:
    root = tmp_path / "tree"
    (root / NAME).parent.mkdir(parents=True)
    (root / NAME).write_text(text)
    return root


def shown(text: str) -> Block:
    """A page block that includes the whole workflow."""
    lines = text.rstrip("\n").split("\n")
    return Block(page="docs/x.md", index=0, lang="yaml", attrs="", text="\n".join(lines),
                 origins=[Origin(NAME, n) for n in range(1, len(lines) + 1)], fence=Origin("docs/x.md", 10),
                 mode=Mode.WORKFLOW, page_lines=[11] * len(lines))


def failures(findings) -> list[str]:
    return [str(f) for f in findings if f.outcome is Outcome.FAILED]


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.split("\n"), start=1) if needle in line)


@needs_actionlint
def test_the_unmutated_workflow_passes(tmp_path):
    findings = workflows.run(Context(root=tree(tmp_path, WORKFLOW), blocks=[shown(WORKFLOW)]))
    assert failures(findings) == []
    checked = {(f.check, str(f.where)) for f in findings if f.outcome is Outcome.PASSED}
    assert (workflows.CHECK, f"{NAME}:1") in checked and (workflows.CHECK, f"docs/x.md:11 ({NAME}:1)") in checked


@needs_actionlint
@pytest.mark.parametrize(("old", "new", "words"), [
    ("${{ inputs.version }}", "${{ inputs.versoin }}", 'property "versoin" is not defined'),
    ('"$VERSION" --keyless', "$VERSION --keyless", "SC2086"),
    ("      id-token: write", "      id-token: writ", '"writ" is invalid as permission'),
], ids=["undefined input", "shellcheck on run", "unknown permission"])
def test_actionlint_fails_at_the_line(tmp_path, old, new, words):
    text = WORKFLOW.replace(old, new)
    assert text != WORKFLOW
    line = line_of(text, new)
    found = failures(workflows.run(Context(root=tree(tmp_path, text), blocks=[shown(text)])))
    assert any(f.startswith(f"{NAME}:{line}: [actionlint] ") and words in f for f in found), found
    assert any(f.startswith(f"docs/x.md:11 ({NAME}:{line}): [actionlint] ") and words in f for f in found), found


@pytest.mark.parametrize(("old", "new", "words"), [
    (f"          version: {FLUX}\n", "          version: 2.0.0\n",
     f"installs `version: 2.0.0`, but versions.yaml flux.version pins {FLUX}"),
    (f"        with:\n          cosign-release: {COSIGN}\n", "",
     f"installs no `cosign-release` (the newest release, whatever it is), but versions.yaml tools.cosign.version "
     f"pins {COSIGN}"),
], ids=["flux CLI of another version", "cosign unpinned"])
def test_a_tool_at_another_version_than_versions_yaml_fails(tmp_path, old, new, words):
    text = WORKFLOW.replace(old, new)
    assert text != WORKFLOW
    step = "fluxcd/flux2/action" if "flux" in words else "sigstore/cosign-installer"
    line = line_of(text, step)
    found = failures(workflows.run(Context(root=tree(tmp_path, text), blocks=[])))
    assert any(f.startswith(f"{NAME}:{line}: [workflow-pins] ") and words in f for f in found), found
