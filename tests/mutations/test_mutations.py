"""Each check fails, with the right page:line, on one mutation of a small
fixture page (written into a scratch snapshot of the project)."""

from __future__ import annotations

import subprocess
import time

from harness.checks import cli_help, metadata, run_local, shellcheck, snippets
from harness.model import Finding, Outcome

from mutations import fixture

P = fixture.PAGE


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


def test_unmutated_fixture_passes_and_leaves_tree_unchanged(tmp_path):
    root = fixture.make(tmp_path)
    status = ["git", "status", "--porcelain", "--untracked-files=all"]
    before = subprocess.run(status, cwd=root, capture_output=True, text=True, check=True).stdout
    findings = all_checks(fixture.context(root))
    assert failed(findings) == []
    checks = {(f.check, f.outcome) for f in findings}
    assert {("local", Outcome.PASSED), ("output", Outcome.PASSED), ("shellcheck", Outcome.PASSED)} <= checks
    after = subprocess.run(status, cwd=root, capture_output=True, text=True, check=True).stdout
    assert after == before


def test_renamed_section(tmp_path):
    root = fixture.make(tmp_path)
    fixture.edit(root, "harness-fixture/app.yaml", "[start:data]", "[start:values]")
    fixture.edit(root, "harness-fixture/app.yaml", "[end:data]", "[end:values]")
    assert_failure(snippets.run(fixture.context(root)), f"{P}:{fixture.YAML_INCLUDE_LINE}", "data")


def test_unclosed_section_names_the_tree_line(tmp_path):
    root = fixture.make(tmp_path)
    fixture.edit(root, "harness-fixture/app.yaml", "# --8<-- [end:data]\n", "")
    assert_failure(snippets.run(fixture.context(root, whole_tree=True)), "harness-fixture/app.yaml:5", "[end:data]")


def test_unused_section_is_a_warning(tmp_path):
    root = fixture.make(tmp_path)
    fixture.edit(root, "harness-fixture/greet.sh", "[end:greet]", "[end:greet]\n# --8<-- [start:spare]\n# --8<-- [end:spare]")
    findings = snippets.run(fixture.context(root, whole_tree=True))
    warnings = [str(f) for f in findings if f.outcome is Outcome.WARNING]
    assert any(w.startswith("harness-fixture/greet.sh:7:") and "spare" in w for w in warnings), warnings
    assert not any("harness-fixture" in f for f in failed(findings))


def test_missing_include(tmp_path):
    root = fixture.make(tmp_path)
    (root / "harness-fixture/greet.sh").unlink()
    assert_failure(snippets.run(fixture.context(root)), f"{P}:{fixture.SCRIPT_INCLUDE_LINE}", "greet.sh")


def test_shell_syntax_error(tmp_path):
    root = fixture.make(tmp_path)
    fixture.edit(root, "harness-fixture/greet.sh", 'echo "hello, ${name}"', 'if [ -n "$name" ]; then echo "hello, ${name}"')
    findings = shellcheck.run(fixture.context(root))
    assert_failure(findings, f"{P}:{fixture.SCRIPT_INCLUDE_LINE} (harness-fixture/greet.sh:5)", "SC")


def test_block_that_hangs(tmp_path):
    root = fixture.make(tmp_path)
    fixture.edit(root, P, "<!-- test: local timeout=20 -->", "<!-- test: local timeout=1 -->")
    fixture.edit(root, P, 'test -z "${KUBECONFIG:-}"', "sleep 600 &\nsleep 600")
    started = time.monotonic()
    findings = run_local.run(fixture.context(root))
    assert time.monotonic() - started < 15, "the timeout did not stop the block"
    assert_failure(findings, f"{P}:{fixture.LOCAL_FENCE_LINE + 1}", "killed")


def test_wrong_expected_output(tmp_path):
    root = fixture.make(tmp_path)
    fixture.edit(root, P, "in tree\n", "in the tree\n")
    assert_failure(run_local.run(fixture.context(root)), f"{P}:{fixture.OUTPUT_FIRST_LINE}", "differs")


def test_failing_command_points_at_its_line(tmp_path):
    root = fixture.make(tmp_path)
    fixture.edit(root, P, "git rev-parse --short HEAD", "git rev-parse --short HEAD\nfalse")
    assert_failure(run_local.run(fixture.context(root)), f"{P}:{fixture.LOCAL_FENCE_LINE + 3}", "status 1")


def test_unknown_flag(tmp_path):
    root = fixture.make(tmp_path)
    fixture.edit(root, P, "git rev-parse --short HEAD", "git rev-parse --short HEAD\ngit switch --creat x")
    assert_failure(cli_help.run(fixture.context(root)), f"{P}:{fixture.LOCAL_FENCE_LINE + 3}", "--creat")


def test_skip_without_reason(tmp_path):
    root = fixture.make(tmp_path)
    fixture.edit(root, P, "<!-- test: local timeout=20 -->", "<!-- test: skip -->")
    assert_failure(metadata.run(fixture.context(root)), f"{P}:{fixture.LOCAL_FENCE_LINE}", "reason")
