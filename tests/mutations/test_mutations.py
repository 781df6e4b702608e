"""Each check fails, with the right page:line, on one mutation of a small
fixture page (written into a scratch snapshot of the project)."""

from __future__ import annotations

import subprocess
import time

import pytest

from harness.checks import (cli_help, metadata, run_local, schemas, shellcheck, snippets, substitution, tree_policy,
                            yaml_parse)
from harness.report import Report
from harness.model import Finding, Outcome

from mutations import fixture

P = fixture.PAGE
APP = "harness-fixture/app.yaml"
GREET = "harness-fixture/greet.sh"


def failed(findings: list[Finding]) -> list[str]:
    return [str(f) for f in findings if f.outcome is Outcome.FAILED]


def assert_failure(findings: list[Finding], where: str, *words: str) -> None:
    hits = [f for f in failed(findings) if f.startswith(where + ":") or f.startswith(where + " (")]
    assert hits, f"expected a failure at {where}, got: {failed(findings) or 'no failures'}"
    for word in words:
        assert any(word in h for h in hits), f"no failure at {where} mentions {word!r}: {hits}"


def all_checks(ctx) -> list[Finding]:
    return [
        *snippets.run(ctx), *metadata.run(ctx), *shellcheck.run(ctx), *run_local.run(ctx), *cli_help.run(ctx)
    ]


def test_unmutated_fixture_passes_and_leaves_tree_unchanged(fixture_base):
    status = ["git", "status", "--porcelain", "--untracked-files=all"]
    before = subprocess.run(status, cwd=fixture_base, capture_output=True, text=True, check=True).stdout
    findings = all_checks(fixture.context(fixture_base))
    assert failed(findings) == []
    checks = {(f.check, f.outcome) for f in findings}
    assert {("local", Outcome.PASSED), ("output", Outcome.PASSED), ("shellcheck", Outcome.PASSED)} <= checks
    after = subprocess.run(status, cwd=fixture_base, capture_output=True, text=True, check=True).stdout
    assert after == before


# (file, old, new) edits; the check to run; whether it looks at the whole
# tree or the fixture page only; where it must fail; a word the failure says.
MUTATIONS = {
    "renamed section": (
        [(APP, "[start:data]", "[start:values]"), (APP, "[end:data]", "[end:values]")],
        snippets, False, f"{P}:{fixture.YAML_INCLUDE_LINE}", "data",
    ),
    "unclosed section names the tree line": (
        [(APP, "# --8<-- [end:data]\n", "")],
        snippets, True, f"{APP}:5", "[end:data]",
    ),
    "shell syntax error": (
        [(GREET, 'echo "hello, ${name}"', 'if [ -n "$name" ]; then echo "hello, ${name}"')],
        shellcheck, False, f"{P}:{fixture.SCRIPT_INCLUDE_LINE} ({GREET}:5)", "SC",
    ),
    "wrong expected output": (
        [(P, "in tree\n", "in the tree\n")],
        run_local, False, f"{P}:{fixture.OUTPUT_FIRST_LINE}", "differs",
    ),
    "failing command points at its line": (
        [(P, "git rev-parse --short HEAD", "git rev-parse --short HEAD\nfalse")],
        run_local, False, f"{P}:{fixture.LOCAL_FENCE_LINE + 3}", "status 1",
    ),
    "unknown flag": (
        [(P, "git rev-parse --short HEAD", "git rev-parse --short HEAD\ngit switch --creat x")],
        cli_help, False, f"{P}:{fixture.LOCAL_FENCE_LINE + 3}", "--creat",
    ),
    "undefined variable names its page line and Jinja's message": (
        [(P, "{{ versions.flux.version }}", "{{ versions.flux.verison }}")],
        snippets, False, f"{P}:4", "UndefinedError: 'dict object' has no attribute 'verison'",
    ),
    "jinja syntax error names its page line and Jinja's message": (
        [(P, '!!! note "Indented"', '!!! note "Indented {% if %}"')],
        snippets, False, f"{P}:23", "Jinja cannot read the page: Expected an expression",
    ),
    "skip without reason": (
        [(P, "<!-- test: local timeout=20 -->", "<!-- test: skip -->")],
        metadata, False, f"{P}:{fixture.LOCAL_FENCE_LINE}", "reason",
    ),
}


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_mutation_fails_at_its_line(fixture_tree, name):
    edits, check, whole_tree, where, word = MUTATIONS[name]
    for path, old, new in edits:
        fixture.edit(fixture_tree, path, old, new)
    assert_failure(check.run(fixture.context(fixture_tree, whole_tree=whole_tree)), where, word)


def test_unused_section_is_a_warning(fixture_tree):
    fixture.edit(fixture_tree, GREET, "[end:greet]", "[end:greet]\n# --8<-- [start:spare]\n# --8<-- [end:spare]")
    findings = snippets.run(fixture.context(fixture_tree, whole_tree=True))
    warnings = [str(f) for f in findings if f.outcome is Outcome.WARNING]
    assert any(w.startswith(f"{GREET}:7:") and "spare" in w for w in warnings), warnings
    assert not any("harness-fixture" in f for f in failed(findings))


def test_missing_include(fixture_tree):
    (fixture_tree / GREET).unlink()
    assert_failure(snippets.run(fixture.context(fixture_tree)), f"{P}:{fixture.SCRIPT_INCLUDE_LINE}", "greet.sh")


def test_a_block_whose_include_fails_reports_that_failure_alone(fixture_tree):
    """No schema, parse, shellcheck or run finding besides the include's."""
    fixture.edit(fixture_tree, APP, "[start:data]", "[start:values]")
    fixture.edit(fixture_tree, APP, "[end:data]", "[end:values]")
    (fixture_tree / GREET).unlink()
    ctx = fixture.context(fixture_tree)
    broken = [b for b in ctx.blocks if b.lang in ("yaml", "bash") and b.mode.value in ("manifests", "static")]
    findings = [*all_checks(ctx), *yaml_parse.run(ctx), *schemas.run(ctx), *substitution.run(ctx)]
    for block in broken:
        on_block = [str(f) for f in findings if f.block is block]
        assert len(on_block) == 1 and "[snippets]" in on_block[0] and "does not resolve" in on_block[0], on_block


def test_block_that_hangs(fixture_tree):
    """A block still running at its limit is killed with everything it
    started. The mark's own limit is left out, so that the check's default
    applies: a fraction of a second here, where a mark can only give whole
    seconds."""
    fixture.edit(fixture_tree, P, "<!-- test: local timeout=20 -->", "<!-- test: local -->")
    fixture.edit(fixture_tree, P, 'test -z "${KUBECONFIG:-}"', "sleep 600 &\nsleep 600")
    started = time.monotonic()
    findings = run_local.run(fixture.context(fixture_tree), default_timeout=0.2)
    assert time.monotonic() - started < 15, "the timeout did not stop the block"
    assert_failure(findings, f"{P}:{fixture.LOCAL_FENCE_LINE + 1}", "still running after 0.2s and was killed")


def test_a_whole_tree_finding_names_the_page_that_shows_its_line(fixture_tree):
    """The tree policy reports the Secret at the tree file's line; the report
    adds the page line of the include that shows it."""
    fixture.edit(fixture_tree, APP, "kind: ConfigMap", "kind: Secret")
    ctx = fixture.context(fixture_tree, whole_tree=True)
    report = Report(ctx.blocks)
    found = [str(f) for f in report.add(tree_policy.run(ctx)) if f.outcome is Outcome.FAILED]
    expected = f"{P}:{fixture.YAML_INCLUDE_LINE} ({APP}:6): [plaintext-secret] Secret fixture: a Secret in plain text"
    assert any(f.startswith(expected) for f in found), found
