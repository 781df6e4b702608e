"""Sessions for building the whitepaper and testing every example it shows.

    nox -s docs              strict build of the site into site/
    nox -s docs-serve        live preview on http://127.0.0.1:8000
    nox -s docs-test         the README's test command: site build + offline harness
    nox -s bench             time the offline run, stage by stage
    nox -s docs-screenshots  draw every diagram in headless Chromium, save screenshots
    nox -s e2e               every tier, with the cluster tier (kwok without Docker, kind with it)
    nox -s cluster-clean     remove clusters, processes and containers a run left behind
    nox -s tools             build the pinned tools (versions.yaml) from source into the per-user cache
    nox -s flux-schemas      write the Flux JSON schemas for the pinned Flux version
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["docs-test"]

REQUIREMENTS = "requirements.txt"


def run(session: nox.Session, *args, **kwargs):
    """``session.run`` that lets the command finish after a Ctrl-C. nox
    would terminate it 0.3 s after the interrupt and kill it 0.2 s later,
    before the harness's teardown is done: clusters, control-plane processes,
    the tier's dockerd and the offline tier's API server would be left
    running. The command gets the Ctrl-C too (same process group) and ends
    as soon as it has cleaned up."""
    return session.run(*args, interrupt_timeout=None, **kwargs)


def _install(session: nox.Session) -> None:
    session.install("-r", REQUIREMENTS)
    # Material 9.x prints an end-of-life banner on every build; the site's
    # build output should show only what concerns the site.
    session.env["NO_MKDOCS_2_WARNING"] = "1"


def _install_mermaid(session: nox.Session) -> None:
    """`npm ci` of the pinned mermaid (tests/harness/diagrams) into
    .tools/diagrams, unless it is there: the diagram check parses with it and
    the site serves it (hooks/mermaid.py). Without node or npm this prints
    why, and the site build then stops with the same advice."""
    run(session, "python", "-m", "harness.checks.diagrams", env={"PYTHONPATH": "tests"}, success_codes=[0, 1])


@nox.session(name="docs")
def docs(session: nox.Session) -> None:
    """Build the site with --strict: a broken include, link or macro fails."""
    _install(session)
    _install_mermaid(session)
    run(session, "mkdocs", "build", "--strict", "--site-dir", "site", *session.posargs)


@nox.session(name="docs-serve")
def docs_serve(session: nox.Session) -> None:
    """Serve the site with live reload on 127.0.0.1."""
    _install(session)
    _install_mermaid(session)
    # Pages include the tree and read versions.yaml: rebuild when they change too.
    watched = [arg for path in ("clusters", "platform", "apps", "create", "snippets", "versions.yaml")
               for arg in ("--watch", path)]
    run(session, "mkdocs", "serve", "--dev-addr", "127.0.0.1:8000", *watched, *session.posargs)


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
    # Build the tools the offline tier needs (kustomize, the flux CLI, helm,
    # actionlint, hclfmt) into
    # the per-user cache, where every clone finds them (needs Go; the first
    # time takes minutes, then under a second). A tool that cannot be built
    # is listed here and its checks are skipped with the reason in the
    # report, never passed.
    run(session, "python", "-m", "toolchain", "--tier", "offline", env={"PYTHONPATH": "tests"}, success_codes=[0, 1])
    # The Flux JSON schemas of the pinned Flux, from the built CLI's CRDs.
    run(session, "python", "-m", "harness.flux_schemas", "--if-missing", env={"PYTHONPATH": "tests"},
                success_codes=[0, 1])
    _fetch_chart_sources(session)
    _install_mermaid(session)
    run(session, "pytest", *DOCS_TEST_ARGS, *joined_page_option(session.posargs), env=OFFLINE_ENV)


def _fetch_chart_sources(session: nox.Session) -> None:
    """The sources of the charts the tree installs, at the versions it pins,
    into the Go module cache (the module proxy, once): the references check
    renders them with the pinned helm. Without them it lists the charts whose
    objects it does not know."""
    run(session, "python", "-m", "harness.checks.helm_charts", "--fetch", env={"PYTHONPATH": "tests"},
                success_codes=[0, 1])


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
    docs-test session's workers; `-- --workers 0` times it in one process).
    `-- --cluster [kwok|kind]` times the cluster tier instead: until three
    clusters are Ready, each proof, the whole tier, and the peak memory of
    everything it started."""
    _install(session)
    _install_mermaid(session)
    if "--cluster" in " ".join(session.posargs):
        provider, rest = cluster_option(session.posargs)
        provider = "kwok" if provider == "auto" else provider
        run(session, "python", "-m", "toolchain", "--tier", provider, env={"PYTHONPATH": "tests"})
        run(session, "python", "tests/bench/cluster.py", "--cluster", provider, *rest,
                    env={"PYTHONDONTWRITEBYTECODE": "1"})
        return
    run(session, "python", "tests/bench/run.py", "--workers", DOCS_TEST_WORKERS, "--dist", DOCS_TEST_DIST,
                *session.posargs, env=OFFLINE_ENV)


# --- cluster tier -----------------------------------------------------------


@nox.session(name="e2e")
def e2e(session: nox.Session) -> None:
    """Every tier including the cluster tier, with Flux bootstrapped from a
    snapshot of the working tree: on kwok (a real control plane and the real
    Flux controllers as host processes, built by `nox -s tools`) where no
    Docker engine answers, on kind clusters from create/ where one does.
    `-- --cluster kind|kwok` chooses, `-- --plan` prints the commands,
    `-- --keep-cluster` keeps the clusters for debugging."""
    _install(session)
    provider, args = cluster_option(session.posargs)
    env = {"PYTHONPATH": "tests"}
    if provider == "auto":
        provider = run(session, "python", "-c", "from cluster import preflight; print(preflight.default_provider())",
                               env=env, silent=True).strip()
    run(session, "python", "-m", "toolchain", "--tier", provider, env=env, success_codes=[0, 1])
    run(session, "python", "-m", "harness.flux_schemas", "--if-missing", env=env, success_codes=[0, 1])
    _fetch_chart_sources(session)
    _install_mermaid(session)
    run(session, "pytest", "-p", "cluster.plugin", f"--cluster={provider}", *args,
                env={"PYTHONDONTWRITEBYTECODE": "1"})


def cluster_option(args: list[str]) -> tuple[str, list[str]]:
    """(the provider ``--cluster NAME`` or ``--cluster=NAME`` names, default
    ``auto``; the other arguments)."""
    provider, rest, words = "auto", [], list(args)
    while words:
        word = words.pop(0)
        if word == "--cluster":
            if words and not words[0].startswith("-"):
                provider = words.pop(0)
        elif word.startswith("--cluster="):
            provider = word.split("=", 1)[1]
        else:
            rest.append(word)
    return provider, rest


@nox.session(name="cluster-clean")
def cluster_clean(session: nox.Session) -> None:
    """Remove what an interrupted or kept run left behind: kwok clusters and
    host processes, kind clusters and containers (names starting with gwp-).
    `-- --dry-run` only lists them."""
    _install(session)
    run(session, "python", "-m", "cluster.clean", *session.posargs, env={"PYTHONPATH": "tests"})


# --- CLI tools ----------------------------------------------------------------


@nox.session(name="tools")
def tools(session: nox.Session) -> None:
    """Build every tool versions.yaml pins from its published source (needs
    Go) into the per-user cache (~/.cache/gitops-whitepaper/tools/<tool>/<version>/),
    which every clone reuses. `-- kustomize flux` builds only those,
    `-- --tier offline|kwok|kind` those a tier needs. Prints where each tool
    came from and how long it took."""
    _install(session)
    run(session, "python", "-m", "toolchain", *session.posargs, env={"PYTHONPATH": "tests"})


# --- Flux schemas ---------------------------------------------------------------


@nox.session(name="flux-schemas")
def flux_schemas(session: nox.Session) -> None:
    """Write the JSON schemas of the pinned Flux CRDs to
    .tools/flux-schemas/<flux.version>/, where docs-test finds them: from the
    CRDs `flux install --export` prints (the pinned flux CLI in .tools/bin or on
    PATH), or `-- --crds DIR` from a folder or file of CRDs; `-- --out DIR`
    writes elsewhere."""
    _install(session)
    run(session, "python", "-m", "harness.flux_schemas", *session.posargs, env={"PYTHONPATH": "tests"})


# --- diagrams in a browser ------------------------------------------------------


@nox.session(name="docs-screenshots")
def docs_screenshots(session: nox.Session) -> None:
    """Build the site, open every page with code blocks in headless Chromium
    (light and dark palette), fail if a diagram is not drawn or a block has
    no checked-by mark, and save screenshots into artifacts/screenshots/
    (pages, diagrams, one of each kind of mark). Needs Chromium ($CHROMIUM
    or /usr/bin/chromium) and node; `-- --page docs/x.md` opens one page,
    `-- --width 390` is a phone."""
    _install(session)
    run(session, "python", "tests/screenshots/run.py", *session.posargs, env={"PYTHONDONTWRITEBYTECODE": "1"})
