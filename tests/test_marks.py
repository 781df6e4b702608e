"""The checked-by marks: the line under every block of the site that says how
the harness checks it (``harness.selection``, ``hooks/checked_by.py``).

The mark is made from the same selection the checks run on, so it names a
check only where that check looks at the block. These tests hold it to what
a run really did, and to what the site shows."""

from __future__ import annotations

import html
import importlib.util
import re
from pathlib import Path

import pytest

from harness import proof, selection
from harness.model import PROJECT_ROOT


@pytest.mark.last_check
def test_every_mark_names_only_checks_that_ran(request, context, report):
    """Every check a block's mark names made a finding for that block in
    this run (for a file check: a passing finding that covers the file), and
    every check that tested a block is named by its mark. Checks whose test
    did not pass are left out: one that failed is reported by its own
    failure, one that did not run (``-k``, the cluster tier offline) made
    nothing. A claim whose check was skipped for a missing tool is listed,
    not counted as made.

    With pytest-xdist the findings are spread over the workers: the
    controlling process holds the marks to all of them once every worker
    finished, and fails this test with the same message (``workers``)."""
    if hasattr(request.config, "workerinput"):
        return
    report.proof = result = prove(request.config, report)
    message = proof_failure(result)
    if message is not None:
        pytest.fail(message, pytrace=False)


def prove(config: pytest.Config, report) -> proof.Proof:
    """The marks of the run's blocks and, unless the run checks one page
    (``--page``, which leaves the scripts out), of the site's views of the
    tree's files, held to the run's findings."""
    files, usage = site_views() if config.getoption("--page") is None else ([], [])
    return proof.prove(report.blocks, report.findings, proof.ran_in(report.passed_tests), PROJECT_ROOT,
                           files=files, usage=usage)


def site_views() -> tuple[list[str], list[str]]:
    """The tree files the site has a view of, and those whose view shows a
    --help text first (hooks/tree_views.py)."""
    import test_site

    tree_views = test_site.hook("tree_views")
    files, _ = tree_views.tree_paths(PROJECT_ROOT)
    usage = [path for path in files
             if tree_views.script_usage(path, (PROJECT_ROOT / path).read_text(encoding="utf-8", errors="replace"))]
    return files, usage


def proof_failure(result: proof.Proof) -> str | None:
    """The failure message of ``test_every_mark_names_only_checks_that_ran``."""
    if not result.problems:
        return None
    return (f"{len(result.problems)} checked-by marks do not match what this run checked:\n"
            + "\n".join(result.problems))


# -- the providers the project's CI runs the cluster tier on ------------------------------


def ci_script(tmp_path: Path, text: str) -> Path:
    (tmp_path / ".ci").mkdir(parents=True)
    (tmp_path / ".ci" / "run").write_text(text, encoding="utf-8")
    return tmp_path


def test_ci_providers_are_read_from_what_ci_runs(tmp_path):
    """The cluster marks name the providers of the `nox -s e2e` lines of
    .ci/run; another provider is one more line there."""
    from cluster.preflight import REQUIRED_BY_PROVIDER

    assert set(selection.ci_providers(PROJECT_ROOT)) <= set(REQUIRED_BY_PROVIDER)  # and it reads .ci/run
    root = ci_script(tmp_path, "#!/usr/bin/env bash\n"
                               "# python3 -m nox -s e2e -- --cluster kind  (a comment)\n"
                               "python3 -m nox -s docs-test\n"
                               "python3 -m nox -s tools -- --tier kwok\n"
                               "python3 -m nox -s e2e -- --cluster kwok tests/test_cluster.py\n"
                               "python3 -m nox -s e2e -- --cluster=kind tests/test_cluster.py\n")
    assert selection.ci_providers(root) == ("kwok", "kind")
    # A command continued on the next line is read as the shell reads it.
    root = ci_script(tmp_path / "continued", "python3 -m nox -s e2e -- \\\n  --cluster kind \\\n  tests/test_cluster.py\n"
                               "python3 -m nox -s e2e -- --cluster kwok\n")
    assert selection.ci_providers(root) == ("kind", "kwok")
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


# -- what the site shows ----------------------------------------------------------------------


# A mark as hooks/checked_by.py writes it: its kind and the checks it names.
MARK = re.compile(r'<div class="checked-by checked-by--(?P<kind>\w+)" data-checks="(?P<checks>[^"]*)">')


def marks_in(page: Path) -> list[tuple[str, str]]:
    """The checked-by marks of a built page, in order: (kind, checks)."""
    return [(m.group("kind"), html.unescape(m.group("checks"))) for m in MARK.finditer(page.read_text(encoding="utf-8"))]


def page_html(site: Path, page: str) -> Path:
    rel = Path(page).relative_to("docs").with_suffix("")
    return site / ("" if rel.name == "index" and rel.parent == Path(".") else
                   str(rel.parent if rel.name == "index" else rel)) / "index.html"


def kind_and_checks(mark: selection.Mark) -> tuple[str, str]:
    kind = "checked" if mark.claims else "skipped" if mark.skipped is not None else "unchecked"
    return kind, " ".join(mark.checks)


def test_every_block_on_the_site_carries_its_mark(shared_site_build, context):
    """The built site shows under every block of every page the mark the
    harness's selection gives it (the site build reads the pages with the
    build's own configuration; this holds it to the harness's reading), and
    under the blocks of every view of a tree file the marks of that file."""
    build = shared_site_build
    code, _ = build.result()
    if code != 0:
        pytest.skip("the site did not build; test_site_builds_strict says why")
    expected = selection.marks(context.blocks, PROJECT_ROOT)
    wrong = []
    pages = sorted({b.page for b in context.blocks})
    for page in pages:
        found = marks_in(page_html(build.site_dir, page))
        want = [kind_and_checks(expected[(b.page, b.index)]) for b in context.blocks if b.page == page]
        if found != want:
            wrong.append(f"{page}: the site shows {len(found)} marks {found}, the harness gives {len(want)} {want}")
    files, usage = site_views()
    marker = selection.Marks(PROJECT_ROOT)
    for path in files:
        found = marks_in(build.site_dir / "tree" / path / "index.html")
        want = [kind_and_checks(marker.of_usage(path))] if path in usage else []
        want.append(kind_and_checks(marker.of_file(path)))
        if found != want:
            wrong.append(f"the view of {path}: the site shows {found}, the harness gives {want}")
    assert not wrong, "\n".join(wrong)


def checked_by_hook():
    spec = importlib.util.spec_from_file_location("site_hooks_checked_by", PROJECT_ROOT / "hooks" / "checked_by.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_hook_finds_the_rendered_blocks_in_order():
    """Where the marks go: after each top-level highlighted block (one with
    line numbers holds divs of its own) and each diagram, not after other
    divs or inline code."""
    hook = checked_by_hook()
    page = ('<p>x <code class="highlight">inline</code></p>\n'
            '<div class="admonition"><div class="language-yaml highlight"><pre><code>a: b</code></pre></div></div>\n'
            '<div class="highlight"><table class="highlighttable"><tr><td class="linenos">'
            '<div class="linenodiv"><pre>1</pre></div></td><td><pre>x</pre></td></tr></table></div>'
            '<pre class="mermaid"><code>flowchart LR</code></pre><div>after</div>')
    ends = hook.RenderedBlocks(page).ends
    expected = ['<pre><code>a: b</code></pre></div>', '<td><pre>x</pre></td></tr></table></div>',
                '<code>flowchart LR</code></pre>']
    assert len(ends) == len(expected)
    for end, tail in zip(ends, expected):
        assert page[:end].endswith(tail), page[:end][-60:]


def test_a_page_whose_html_has_other_blocks_gets_no_marks_but_a_warning(caplog):
    """The marks go under the blocks by their order: when the HTML has a
    different number of blocks than the harness found, the page gets none
    and the build a warning (which fails the strict build)."""
    from types import SimpleNamespace

    from harness.model import Block, Mode, Origin

    hook = checked_by_hook()
    block = Block(page="docs/x.md", index=0, lang="bash", attrs="", text="echo hi", origins=[Origin("docs/x.md", 4)],
                  fence=Origin("docs/x.md", 3), mode=Mode.STATIC)
    hook._state.update(selection=selection, icons={kind: "" for kind in hook.ICONS},
                       marks={"x.md": list(selection.marks([block], PROJECT_ROOT).values())})
    page = SimpleNamespace(file=SimpleNamespace(src_uri="x.md"), url="x/", toc=[])
    with caplog.at_level("WARNING"):
        out = hook.on_page_content("<p>no code here</p>", page, config=None, files=None)
    assert out == "<p>no code here</p>"
    assert "docs/x.md: the harness finds 1 code blocks on the page but its HTML has 0" in caplog.text
