"""The site's view of every tree file (hooks/tree_views.py): each shows its
file exactly, a script's view shows what its --help prints, the pages' names
of tree files link to the views, and a name of a file the tree lacks fails
the strict build."""

from __future__ import annotations

import html
import logging
import re
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.model import PROJECT_ROOT, Finding, Origin, Outcome
from test_site import hook

tree_views = hook("tree_views")
CODE_CELL = re.compile(r'<td class="code">(.*?)</td>', re.S)
TEXT_BLOCK = re.compile(r'<div class="language-text highlight"><pre>(.*?)</pre>', re.S)


def text_of(markup: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", markup))


@pytest.fixture(scope="module")
def site(shared_site_build) -> Path:
    code, _ = shared_site_build.result()
    if code != 0:
        pytest.skip("the site did not build; test_site_builds_strict says why")
    return shared_site_build.site_dir


def test_every_tree_file_has_a_view_that_shows_it_as_it_is(site):
    files, dirs = tree_views.tree_paths(PROJECT_ROOT)
    assert "snippets/sandbox-clone.sh" in files and "clusters/development/flux-system" in dirs
    problems = []
    for path in files:
        view = site / tree_views.PREFIX / path / "index.html"
        if not view.is_file():
            problems.append(f"{path}: no view at {view.relative_to(site)}")
            continue
        cells = CODE_CELL.findall(view.read_text(encoding="utf-8"))
        shown = text_of(cells[-1]).rstrip("\n") if cells else None
        if shown != (PROJECT_ROOT / path).read_text(encoding="utf-8").rstrip("\n"):
            problems.append(f"{path}: its view ({view.relative_to(site)}) does not show the file line for line "
                            "(a snippet marker, a fence or Jinja in the file?): see hooks/tree_views.py")
    for directory in dirs:
        if not (site / tree_views.PREFIX / directory / "index.html").is_file():
            problems.append(f"{directory}/: no view")
    assert not problems, "\n".join(problems)


def test_a_script_view_shows_what_its_help_prints(site, report):
    """Each script's view shows first what its --help prints; a passing
    finding per script says so (the checked-by mark of that text names it)."""
    scripts = sorted(p.relative_to(PROJECT_ROOT).as_posix() for p in (PROJECT_ROOT / "snippets").glob("*.sh")
                     if p.name != "lib.sh")
    assert scripts
    for script in scripts:
        printed = subprocess.run(["bash", script, "--help"], cwd=PROJECT_ROOT, capture_output=True,
                                 text=True, timeout=30, stdin=subprocess.DEVNULL)
        assert printed.returncode == 0, f"{script} --help exited {printed.returncode}: {printed.stderr}"
        page = (site / tree_views.PREFIX / script / "index.html").read_text(encoding="utf-8")
        usage = TEXT_BLOCK.search(page)
        assert usage, f"the view of {script} has no usage block: does its usage() use cat <<'USAGE'?"
        assert text_of(usage.group(1)).rstrip("\n") == printed.stdout.rstrip("\n"), (
            f"the view of {script} does not show what `{script} --help` prints")
        report.add([Finding("help-text", Outcome.PASSED, Origin(script, 1), "its view shows what --help prints")])


def test_page_links_to_the_views_and_stale_names_warn(tmp_path, caplog):
    """On a page, a code span naming a tree file or directory links to its
    view (a :LINE to the line); one naming a file its directory lacks is a
    warning (which --strict makes fatal); other code is left alone."""
    (tmp_path / "snippets").mkdir()
    (tmp_path / "snippets" / "run.sh").write_text("echo one\n", encoding="utf-8")
    (tmp_path / "docs").mkdir()
    (tmp_path / "mkdocs.yml").write_text(
        f"site_name: t\nhooks:\n  - {PROJECT_ROOT / 'hooks' / 'tree_views.py'}\n", encoding="utf-8")
    from mkdocs.config import load_config
    from mkdocs.structure.files import Files

    config = load_config(str(tmp_path / "mkdocs.yml"))
    files = config.plugins.on_files(Files([]), config=config)
    page = SimpleNamespace(url="guide/", file=SimpleNamespace(src_uri="guide.md"))
    content = (
        "<p><code>snippets/run.sh</code>, <code>snippets/</code>, <code>snippets/run.sh:1</code>, "
        "<code>snippets/gone.sh</code>, <code>clusters/sandbox-a/apps.yaml</code>, <code>platform</code></p>"
        '<pre><code>snippets/run.sh</code></pre><span class="filename">snippets/run.sh</span>'
    )
    with caplog.at_level(logging.WARNING):
        out = config.plugins.on_page_content(content, page=page, config=config, files=files)
    assert '<a href="../tree/snippets/run.sh/"><code>snippets/run.sh</code></a>' in out
    assert '<a href="../tree/snippets/"><code>snippets/</code></a>' in out
    assert '<a href="../tree/snippets/run.sh/#__codelineno-0-1"><code>snippets/run.sh:1</code></a>' in out
    assert '<span class="filename"><a href="../tree/snippets/run.sh/">snippets/run.sh</a></span>' in out
    assert "<code>snippets/gone.sh</code>," in out and "<pre><code>snippets/run.sh</code></pre>" in out
    assert "<code>clusters/sandbox-a/apps.yaml</code>" in out and "<code>platform</code>" in out
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "guide.md names `snippets/gone.sh`" in warnings[0], warnings


def test_the_views_cover_the_tree_the_harness_checks():
    from harness.checks import yaml_docs

    assert tree_views.TREE_DIRS == yaml_docs.TREE_DIRS
