"""The checked-by marks: the line under every block of the site that says how
the harness checks it (``harness.selection``, ``hooks/checked_by.py``).

The mark is made from the same selection the checks run on, so it names a
check only where that check looks at the block. These tests hold it to what
a run really did, and to what the site shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import selection
from harness.model import PROJECT_ROOT


@pytest.mark.last_check
def test_every_mark_names_only_checks_that_ran(request, context, report):
    """Every check a block's mark names made a finding for that block in
    this run (for a file check: a passing finding that covers the file), and
    every check that tested a block is named by its mark. Checks whose test
    did not run (``-k``, ``--page``, the cluster tier offline) are left out;
    a claim whose check was skipped for a missing tool is listed, not
    counted as made.

    With pytest-xdist the findings are spread over the workers: the
    controlling process holds the marks to all of them once every worker
    finished, and fails this test with the same message (``workers``)."""
    if hasattr(request.config, "workerinput"):
        return
    report.proof = proof = selection.prove(report.blocks, report.findings, selection.ran_in(report.ran_tests),
                                           PROJECT_ROOT)
    fail_on_proof(proof)


def fail_on_proof(proof: selection.Proof) -> None:
    message = proof_failure(proof)
    if message is not None:
        pytest.fail(message, pytrace=False)


def proof_failure(proof: selection.Proof) -> str | None:
    """The failure message of ``test_every_mark_names_only_checks_that_ran``."""
    if not proof.problems:
        return None
    return (f"{len(proof.problems)} checked-by marks do not match what this run checked:\n"
            + "\n".join(proof.problems))


# -- the providers the project's CI runs the cluster tier on ------------------------------


def ci_script(tmp_path: Path, text: str) -> Path:
    (tmp_path / ".ci").mkdir()
    (tmp_path / ".ci" / "run").write_text(text, encoding="utf-8")
    selection.ci_providers.cache_clear()
    return tmp_path


def test_ci_providers_are_read_from_what_ci_runs(tmp_path):
    """The cluster marks name the providers of the `nox -s e2e` lines of
    .ci/run; another provider is one more line there."""
    assert selection.ci_providers(PROJECT_ROOT), ".ci/run runs the cluster tier on no provider"
    root = ci_script(tmp_path, "#!/usr/bin/env bash\n"
                               "# python3 -m nox -s e2e -- --cluster kind  (a comment)\n"
                               "python3 -m nox -s docs-test\n"
                               "python3 -m nox -s tools -- --tier kwok\n"
                               "python3 -m nox -s e2e -- --cluster kwok tests/test_cluster.py\n"
                               "python3 -m nox -s e2e -- --cluster=kind tests/test_cluster.py\n")
    assert selection.ci_providers(root) == ("kwok", "kind")
    assert selection.providers_words(("kwok", "kind")) == "on kwok and kind in CI"
    assert selection.providers_words(()) == "by the cluster tier (not in CI)"


@pytest.mark.parametrize("line", ["python3 -m nox -s e2e\n", 'python3 -m nox -s e2e -- --cluster "$provider"\n',
                                  "python3 -m nox -s e2e -- --cluster k3d\n"])
def test_a_ci_line_the_marks_cannot_read_is_an_error(tmp_path, line):
    root = ci_script(tmp_path, line)
    with pytest.raises(selection.CIError, match=r"\.ci/run:1 .*--cluster NAME"):
        selection.ci_providers(root)


def test_without_ci_the_cluster_marks_say_so(tmp_path):
    assert selection.ci_providers(tmp_path) == ()
