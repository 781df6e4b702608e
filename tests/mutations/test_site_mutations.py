"""The strict site build fails on every warning mkdocs.yml's ``validation:``
asks for, at the page and line of the mistake: a small site made from the
project's mkdocs.yml (its nav cut down to two pages) is built once with three
mistakes in it."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from harness import site_build
from harness.model import PROJECT_ROOT, Outcome

NAV = "nav:\n  - Home: index.md\n  - Guide: guide.md\n"
INDEX = """\
# Home

Read the [guide](guide.md) and its [setup section](guide.md#setup).
"""
GUIDE = """\
# Guide

## Setup

Nothing to set up.
"""


def small_site(root: Path) -> Path:
    """The project's mkdocs.yml with a nav of two pages, and those pages."""
    config = (PROJECT_ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    config = re.sub(r"^nav:\n(?:[ -].*\n?)*", NAV, config, flags=re.M)
    config = re.sub(r"^hooks:\n(?:[ -].*\n)*", "", config, flags=re.M)
    assert "validation:" in config and config.endswith(NAV), "mkdocs.yml no longer ends with its nav"
    (root / "docs").mkdir(parents=True)
    (root / "mkdocs.yml").write_text(config, encoding="utf-8")
    for name in ("versions.yaml", "reviewed.yaml", "site_macros.py"):
        shutil.copy(PROJECT_ROOT / name, root / name)
    # The macros module reads hooks/repository.py; the hooks themselves (the
    # tree's pages, the local Mermaid) are left out of this small site.
    shutil.copytree(PROJECT_ROOT / "hooks", root / "hooks", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "docs/index.md").write_text(INDEX, encoding="utf-8")
    (root / "docs/guide.md").write_text(GUIDE, encoding="utf-8")
    return root


def build(root: Path) -> tuple[int | None, list[str]]:
    code, output = site_build.start(root).result()
    return code, [str(f) for f in site_build.findings(output, root) if f.outcome is Outcome.FAILED]


def test_every_validation_warning_fails_the_build_at_its_page_line(tmp_path: Path) -> None:
    """One build of the small site with the three mistakes in it: each is a
    finding at its page line, and there is no other (the small site builds
    without them: the project's own site build shows that its configuration
    does)."""
    root = small_site(tmp_path / "site")
    index = INDEX + "\nSee also [the missing page](missing.md).\n"
    index = index.replace("guide.md#setup", "guide.md#set-up")
    (root / "docs/index.md").write_text(index, encoding="utf-8")
    (root / "docs/orphan.md").write_text("# Left out of the nav\n", encoding="utf-8")
    code, failures = build(root)

    assert code not in (0, None), "mkdocs build --strict passed with three validation warnings"
    text = "\n".join(failures)
    assert len(failures) == 3, text
    assert any(f.startswith("docs/index.md:5: [site-build]") and "'missing.md'" in f for f in failures), text
    assert any(f.startswith("docs/index.md:3: [site-build]") and "anchor '#set-up'" in f for f in failures), text
    assert any(f.startswith("docs/orphan.md:1: [site-build]") and "not in the nav" in f for f in failures), text
