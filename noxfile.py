"""Sessions for building the whitepaper and testing every example it shows.

    nox -s docs              strict build of the site into site/
    nox -s docs-serve        live preview on http://127.0.0.1:8000
    nox -s docs-test         the README's test command: site build + offline harness
    nox -s bench             time the offline run, stage by stage
    nox -s docs-screenshots  draw every diagram in headless Chromium, save screenshots
    nox -s e2e               every tier, with the cluster tier on kind
    nox -s cluster-clean     remove kind clusters and containers a run left behind
    nox -s tools             install the pinned CLI tools (versions.yaml) into .tools/bin
    nox -s flux-schemas      write the Flux JSON schemas for the pinned Flux version
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["docs-test"]

REQUIREMENTS = "requirements.txt"


def _install(session: nox.Session) -> None:
    session.install("-r", REQUIREMENTS)
    # Material 9.x prints an end-of-life banner on every build; the site's
    # build output should show only what concerns the site.
    session.env["NO_MKDOCS_2_WARNING"] = "1"


@nox.session(name="docs")
def docs(session: nox.Session) -> None:
    """Build the site with --strict: a broken include, link or macro fails."""
    _install(session)
    session.run("mkdocs", "build", "--strict", "--site-dir", "site", *session.posargs)


@nox.session(name="docs-serve")
def docs_serve(session: nox.Session) -> None:
    """Serve the site with live reload on 127.0.0.1."""
    _install(session)
    # Pages include the tree and read versions.yaml: rebuild when they change too.
    watched = [arg for path in ("clusters", "platform", "apps", "create", "snippets", "versions.yaml")
               for arg in ("--watch", path)]
    session.run("mkdocs", "serve", "--dev-addr", "127.0.0.1:8000", *watched, *session.posargs)


# The offline run's pytest workers (pytest-xdist): two, the cores it is budgeted
# for (tests/bench/run.py); `-- -n 0` runs everything in one process. Tests
# marked with one xdist_group run on one worker (the manifest checks, which
# share what they work out about the tree).
DOCS_TEST_WORKERS = "2"
DOCS_TEST_DIST = "loadgroup"
# The pytest-kind plugin serves the cluster tier only (its --keep-cluster);
# the offline run leaves it out, and with it the HTTP libraries it imports.
DOCS_TEST_ARGS = ["-n", DOCS_TEST_WORKERS, "--dist", DOCS_TEST_DIST, "-p", "no:pytest-kind"]
# Python's bytecode goes to the git-ignored .tools/pycache, not beside the
# tree's files: every pytest process (and the site build) starts from it.
OFFLINE_ENV = {"PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": str(Path(".tools/pycache").resolve())}


@nox.session(name="docs-test")
def docs_test(session: nox.Session) -> None:
    """The README's test command: the strict site build (tests/test_site.py)
    and every example checked offline, on two pytest workers;
    `-- --page docs/x.md` runs one page, `-- -n 0` runs in one process."""
    _install(session)
    # Install the pinned CLI tools that are missing (needs Go); a tool that
    # cannot be installed is listed here and its checks are skipped with the
    # reason in the report, never passed.
    session.run("python", "-m", "harness.tools", env={"PYTHONPATH": "tests"}, success_codes=[0, 1])
    session.run("python", "-m", "harness.checks.diagrams", env={"PYTHONPATH": "tests"}, success_codes=[0, 1])
    session.run("pytest", *DOCS_TEST_ARGS, *joined_page_option(session.posargs), env=OFFLINE_ENV)


def joined_page_option(args: list[str]) -> list[str]:
    """``--page docs/x.md`` as ``--page=docs/x.md``: pytest reads the option
    from tests/conftest.py only after it has taken a separate value for a
    path to collect (and then fails on an unknown option)."""
    out: list[str] = []
    words = iter(args)
    for word in words:
        value = next(words, None) if word == "--page" else None
        out.append(word if value is None else f"--page={value}")
    return out


@nox.session(name="bench")
def bench(session: nox.Session) -> None:
    """Time each stage of the offline run and the whole `pytest` run (on the
    docs-test session's workers; `-- --workers 0` times it in one process)."""
    _install(session)
    session.run("python", "tests/bench/run.py", "--workers", DOCS_TEST_WORKERS, "--dist", DOCS_TEST_DIST,
                *session.posargs, env=OFFLINE_ENV)


# --- cluster tier -----------------------------------------------------------


@nox.session(name="e2e")
def e2e(session: nox.Session) -> None:
    """Every tier including the cluster tier: kind clusters from create/, Flux
    bootstrapped from a snapshot of the working tree. Without Docker, kind,
    kubectl or flux the cluster tests are skipped with the reason and the
    offline tiers decide the exit status. `-- --plan` prints the commands,
    `-- --keep-cluster` keeps the clusters for debugging."""
    _install(session)
    session.run("pytest", "-p", "cluster.plugin", "--cluster=kind", *session.posargs,
                env={"PYTHONDONTWRITEBYTECODE": "1"})


@nox.session(name="cluster-clean")
def cluster_clean(session: nox.Session) -> None:
    """Remove the kind clusters and containers an interrupted or kept run left
    behind (names starting with gwp-). `-- --dry-run` only lists them."""
    _install(session)
    session.run("python", "-m", "cluster.clean", *session.posargs, env={"PYTHONPATH": "tests"})


# --- CLI tools ----------------------------------------------------------------


@nox.session(name="tools")
def tools(session: nox.Session) -> None:
    """Install the CLI tools versions.yaml pins (`go install MODULE@VERSION`
    into .tools/bin; needs Go). `-- kustomize kind` installs only those. Prints
    where each tool was found, and why one is missing."""
    _install(session)
    session.run("python", "-m", "harness.tools", *session.posargs, env={"PYTHONPATH": "tests"})


# --- Flux schemas ---------------------------------------------------------------


@nox.session(name="flux-schemas")
def flux_schemas(session: nox.Session) -> None:
    """Write the JSON schemas of the pinned Flux CRDs to
    .tools/flux-schemas/<flux.version>/, where docs-test finds them: from the
    CRDs `flux install --export` prints (the pinned flux CLI in .tools/bin or on
    PATH), or `-- --crds DIR` from a folder or file of CRDs; `-- --out DIR`
    writes elsewhere."""
    _install(session)
    session.run("python", "-m", "harness.flux_schemas", *session.posargs, env={"PYTHONPATH": "tests"})


# --- diagrams in a browser ------------------------------------------------------


@nox.session(name="docs-screenshots")
def docs_screenshots(session: nox.Session) -> None:
    """Build the site, open every page with diagrams in headless Chromium
    (light and dark palette), fail if a diagram is not drawn, and save
    screenshots into artifacts/screenshots/. Needs Chromium ($CHROMIUM or
    /usr/bin/chromium) and node; `-- --page docs/x.md` opens one page."""
    _install(session)
    session.run("python", "tests/screenshots/run.py", *session.posargs, env={"PYTHONDONTWRITEBYTECODE": "1"})
