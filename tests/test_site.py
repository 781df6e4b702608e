"""The strict site build, and the promise that a run leaves the tree as it was."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile

import pytest

from harness.model import PROJECT_ROOT, Outcome

PAGE_NAME = re.compile(r"(?:docs/)?[\w./-]+\.md")


def git_status() -> str:
    return subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, check=True,
    ).stdout


def pytest_configure_status(config) -> None:  # called from conftest
    config._docs_test_status = git_status()


def test_site_builds_strict(context):
    """``mkdocs build --strict`` into a temporary folder: a broken include,
    link or macro fails here as it fails the site."""
    with tempfile.TemporaryDirectory(prefix="docs-test-site-") as site_dir:
        proc = subprocess.run(
            [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", site_dir],
            cwd=PROJECT_ROOT, capture_output=True, text=True,
        )
    if proc.returncode == 0:
        return
    output = (proc.stdout + proc.stderr).strip().splitlines()
    # mkdocs names the page for link and nav problems but not when an include
    # raises; the extraction's findings name page:line for those.
    located = [str(p) for p in context.problems if p.outcome is Outcome.FAILED]
    messages = [ln for ln in output if ln.startswith(("WARNING", "ERROR", "Error", "Aborted"))]
    tail = messages or output[-5:]
    pytest.fail(
        "mkdocs build --strict failed:\n"
        + "\n".join(tail + located)
        + "\nRun `nox -s docs` to see the full build output.",
        pytrace=False,
    )


@pytest.mark.last_check
def test_working_tree_unchanged(request):
    """Nothing the harness ran changed the working tree (it only runs in
    scratch snapshots). Compares ``git status`` with the one taken when the
    run started."""
    before = request.config._docs_test_status
    after = git_status()
    if before != after:
        old, new = set(before.splitlines()), set(after.splitlines())
        changes = [f"  now: {ln}" for ln in sorted(new - old)] + [f"  was: {ln}" for ln in sorted(old - new)]
        pytest.fail("the run changed the working tree (git status --porcelain):\n" + "\n".join(changes),
                    pytrace=False)
