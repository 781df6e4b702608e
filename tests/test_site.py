"""The strict site build, and the promise that a run leaves the tree as it was."""

from __future__ import annotations

import importlib.util
import subprocess

import pytest

from harness import site_build, site_html
from harness.model import PROJECT_ROOT, Finding, Origin, Outcome
from harness.report import fail_on

SITE_BUILD_KEY = pytest.StashKey["site_build.SiteBuild | site_build.AttachedBuild"]()
# What the controlling process passes to pytest-xdist workers (``workers``).
TREE_STATUS_INPUT = "docs_test_tree_status"
SITE_BUILD_INPUT = "docs_test_site_build"
TREE_CHECK = "test_working_tree_unchanged"


def tree_state() -> dict[str, str]:
    """Every changed or untracked file of the working tree: its ``git status``
    code and the hash of its content (so a change to a file that was already
    modified when the run started counts too)."""
    out = subprocess.run(
        ["git", "status", "--porcelain", "-z", "--untracked-files=all"],
        cwd=PROJECT_ROOT, capture_output=True, check=True,
    ).stdout.decode("utf-8", "replace")
    records = iter(out.split("\0"))
    codes: dict[str, str] = {}
    for record in records:
        if not record:
            continue
        code, path = record[:2], record[3:]
        if code[0] in "RC":
            next(records, None)  # the path it was renamed or copied from
        codes[path] = code
    present = [p for p in codes if (PROJECT_ROOT / p).is_file()]
    hashes = subprocess.run(
        ["git", "hash-object", "--no-filters", "--stdin-paths"], cwd=PROJECT_ROOT,
        input="\n".join(present) + "\n", capture_output=True, text=True, check=True,
    ).stdout.split() if present else []
    content = dict(zip(present, hashes))
    return {path: f"{code} {content.get(path, '-')}" for path, code in codes.items()}


def pytest_configure_status(config) -> None:  # called from conftest
    """The tree as the run found it; a pytest-xdist worker takes the state the
    controlling process recorded when the run started (``workers``)."""
    shared = getattr(config, "workerinput", {}).get(TREE_STATUS_INPUT)
    config._docs_test_status = shared if shared is not None else tree_state()


def start_site_build(session: pytest.Session) -> None:  # called from conftest
    """Start the strict build in the background when this run includes
    ``test_site_builds_strict``; it runs beside the other tests. On a
    pytest-xdist worker, attach to the one build the controlling process
    started (``workers``) instead."""
    if session.config.option.collectonly:
        return
    if any(item.originalname == "test_site_builds_strict" for item in session.items):
        workerinput = getattr(session.config, "workerinput", None)
        if workerinput is None:
            session.config.stash[SITE_BUILD_KEY] = site_build.start(PROJECT_ROOT)
        elif workerinput.get(SITE_BUILD_INPUT):
            session.config.stash[SITE_BUILD_KEY] = site_build.attach(workerinput[SITE_BUILD_INPUT])


def stop_site_build(config) -> None:  # called from conftest
    build = config.stash.get(SITE_BUILD_KEY, None)
    if build is not None:
        build.stop()


def shared_build(config) -> site_build.SiteBuild | site_build.AttachedBuild:
    """The run's one site build; started here when the run did not start it
    (it is stopped, and its folder removed, when the run ends)."""
    build = config.stash.get(SITE_BUILD_KEY, None)
    if build is None:
        build = config.stash[SITE_BUILD_KEY] = site_build.start(PROJECT_ROOT)
    return build


def hook(name: str):
    """A module of hooks/, the site build's own code (not a package)."""
    spec = importlib.util.spec_from_file_location(f"site_hooks_{name}", PROJECT_ROOT / "hooks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_site_builds_strict(shared_site_build, context, report):
    """``mkdocs build --strict`` into a temporary folder: a broken include,
    link or macro fails here as it fails the site. Every warning the build
    prints is a finding at the page (and line) it names."""
    code, output = shared_site_build.result()
    if code is None:
        pytest.fail(f"mkdocs build --strict did not finish in {site_build.TIMEOUT}s:\n"
                    + "\n".join(output.strip().splitlines()[-5:]), pytrace=False)
    found = site_build.findings(output, PROJECT_ROOT)
    if code == 0 and not found:
        report.add([Finding(site_build.CHECK, Outcome.PASSED, Origin("mkdocs.yml", 1), "mkdocs build --strict")])
        return
    if not found:  # failed without a message we know: show its last lines
        tail = "\n".join(output.strip().splitlines()[-5:])
        found = [Finding(site_build.CHECK, Outcome.FAILED, Origin("mkdocs.yml", 1),
                         f"mkdocs build --strict failed (exit status {code}):\n{tail}")]
    # mkdocs names the page for link and nav problems but not when an include
    # raises; the extraction's findings name page:line for those.
    located = [p for p in context.problems if p.outcome is Outcome.FAILED]
    report.add(found)
    fail_on(found + located)


def test_site_loads_nothing_from_another_host(shared_site_build):
    """The built pages load every script, stylesheet and image from the site
    itself, and every page with a diagram loads the site's own mermaid at the
    pinned version (else Material fetches one from a CDN)."""
    code, _ = shared_site_build.result()
    if code != 0:
        pytest.skip("the site did not build; test_site_builds_strict says why")
    mermaid = hook("mermaid")
    script = mermaid.script_path(mermaid.pinned_version(PROJECT_ROOT))
    found = site_html.problems(shared_site_build.site_dir, script)
    if found:
        pytest.fail(f"{len(found)} problems in the built HTML:\n" + "\n".join(found), pytrace=False)


def test_site_html_check_finds_what_it_looks_for(tmp_path):
    """The HTML check itself: a script from a CDN, a web font, and a diagram
    page without the local mermaid are each reported; a page that loads the
    local mermaid, and links to other hosts, are not."""
    script = "assets/javascripts/mermaid-1.0.0.min.js"
    (tmp_path / "assets/javascripts").mkdir(parents=True)
    (tmp_path / script).write_text("", encoding="utf-8")
    pages = {
        "good/index.html": '<a href="https://example.org/">a link</a><pre class="mermaid">a</pre>'
                           '<script src="../assets/javascripts/mermaid-1.0.0.min.js"></script>',
        "cdn/index.html": '<script src="https://unpkg.com/mermaid@11/dist/mermaid.min.js"></script>',
        "font/index.html": '<link rel="stylesheet" href="//fonts.googleapis.com/css?family=Roboto">',
        "bare/index.html": '<pre class="mermaid">a</pre><script src="../other.js"></script>',
    }
    for name, text in pages.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(f"<html><body>{text}</body></html>", encoding="utf-8")
    found = site_html.problems(tmp_path, script)
    assert len(found) == 3, found
    assert any(f.startswith("docs/cdn.md") and "unpkg.com" in f for f in found)
    assert any(f.startswith("docs/font.md") and "fonts.googleapis.com" in f for f in found)
    assert any(f.startswith("docs/bare.md") and "does not load" in f for f in found)


def test_repository_home_is_one_setting():
    """extra.repository decides the repository button, the edit links and the
    pages' links: all of them while it is set, none while it is empty."""
    from types import SimpleNamespace

    repository = hook("repository")

    def configured(value):
        config = SimpleNamespace(extra={"repository": value}, repo_url="https://placeholder.example/x",
                                 repo_name="x", edit_uri=None, edit_uri_template=None)
        return repository.on_config(config)

    unset = configured("")
    assert (unset.repo_url, unset.repo_name, unset.edit_uri) == (None, None, None)
    home = configured("https://git.example.org/platform/gitops-whitepaper/")
    assert home.repo_url == "https://git.example.org/platform/gitops-whitepaper"
    assert home.repo_name == "platform/gitops-whitepaper" and home.edit_uri == "edit/main/docs/"
    with pytest.raises(Exception, match="extra.repository"):
        configured("git@github.com:example/repo.git")

    macros = {}
    env = SimpleNamespace(conf=SimpleNamespace(extra={"repository": ""}),
                          macro=lambda f: macros.setdefault(f.__name__, f))
    repository.define_env(env)
    assert macros["repository_link"]("this repository") == "this repository"
    env.conf.extra["repository"] = "https://git.example.org/platform/gitops-whitepaper"
    assert macros["repository_link"]("this repository") == (
        "[this repository](https://git.example.org/platform/gitops-whitepaper)")


@pytest.mark.last_check
def test_working_tree_unchanged(request):
    """Nothing the harness ran changed the working tree (it only runs in
    scratch snapshots). Compares the changed and untracked files, with their
    content, to what they were when the run started.

    The whole tree is compared, not a list of files the harness is expected
    to write: the mistake this guards against is a block or tool running in
    the real tree instead of its snapshot, and that can write anywhere. The
    price: a file someone edits while the run is going (on a shared checkout)
    shows up here too; CI never does that, and the message says so.

    With pytest-xdist the controlling process compares once more after every
    worker finished, and fails the run with the same message (``workers``)."""
    message = tree_changes(request.config._docs_test_status, tree_state())
    if message is not None:
        pytest.fail(message, pytrace=False)


def tree_changes(before: dict[str, str], after: dict[str, str]) -> str | None:
    """What changed between two ``tree_state``s, as the failure message of
    ``test_working_tree_unchanged``; None when nothing did."""
    if before == after:
        return None
    changes = []
    for path in sorted(set(before) | set(after)):
        if before.get(path) == after.get(path):
            continue
        was, now = before.get(path), after.get(path)
        if was is None:
            what = "a new file" if now.startswith("??") else f"changed (git status {now[:2].strip()})"
            changes.append(f"  {path}: {what}")
        elif now is None:
            changes.append(f"  {path}: back to its committed content")
        else:
            changes.append(f"  {path}: changed during the run ({was[:2].strip()} -> {now[:2].strip()})")
    return (
        "the run changed the working tree (git status, with content):\n" + "\n".join(changes)
        + "\nThe harness must only write into scratch snapshots (harness.scratch). If you or an editor "
        "changed these files while the run was going, run it again."
    )
