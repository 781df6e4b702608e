"""pytest wiring of the docs-test harness.

- ``context``: the blocks every page renders (``harness.extract.collect``),
  the Flux schema folder, and ``--page`` when given;
- ``report``: collects findings; its summary prints at the end of the run.

With pytest-xdist (``-n 2``) the workers send their findings to the
controlling process, which prints the one report (``workers``).

Options: ``--page docs/x.md`` runs the checks of one page only;
``--flux-schemas=DIR`` (or ``$FLUX_SCHEMAS``) points at the Flux JSON schemas
(default: the schemas made from the pinned Flux's CRDs in the tool cache;
``harness.flux_schemas``).
"""

from __future__ import annotations

import gc
import os
from pathlib import Path

import pytest

from harness import extract
from harness.flux_schemas import SchemaError, schema_folder
from harness.model import PROJECT_ROOT, Context
from harness.report import Report

REPORT_KEY = pytest.StashKey[Report]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("docs-test")
    group.addoption("--page", default=None, metavar="docs/x.md", help="run the checks of this page only")
    group.addoption(
        "--flux-schemas",
        default=None,
        metavar="DIR",
        help="folder of Flux JSON schemas ({group}/{kind}_{version}.json); default $FLUX_SCHEMAS, "
        "else the schemas of the pinned Flux in the tool cache (nox -s flux-schemas)",
    )


class TestsThatPassed:
    """Records in the report every test whose call passed: the checks this
    run made, which the checked-by marks are held to (``tests/test_marks.py``).
    A check whose test failed is reported by that failure; one skipped or
    deselected made no check. On several workers the controlling process
    sees every worker's tests here too."""

    def __init__(self, report: Report) -> None:
        self.report = report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" and report.passed:
            self.report.passed_tests.add(report.nodeid)


def pytest_configure(config: pytest.Config) -> None:
    # The checks allocate many small objects (parsed YAML, the trees the
    # harness's own tests make); at CPython's default the cyclic collector
    # ran every 700 allocations, about a tenth of the run's Python time.
    gc.set_threshold(20_000, 10, 10)
    config.stash[REPORT_KEY] = Report()
    config.pluginmanager.register(TestsThatPassed(config.stash[REPORT_KEY]), "docs-test-tests-that-passed")
    config.addinivalue_line("markers", "last_check: runs after every other test (tree-unchanged check)")
    import api_server_run
    import test_site
    import workers

    api_server_run.configure(config)
    test_site.pytest_configure_status(config)
    workers.register(config, config.stash[REPORT_KEY], collect_pages)


def pytest_collection_modifyitems(session, config, items) -> None:
    """The checks of the pages and the tree (the tests that use ``context``)
    run first, so that their findings come before anything else a mistake
    may break. The tests that read the site build (``shared_site_build``)
    come after the rest: the build runs beside the tests from the end of the
    collection, and a test that asked for it early would wait for it with
    its worker idle. Tests marked ``last_check`` run last, after everything
    else."""
    def order(item) -> tuple:
        fixtures = getattr(item, "fixturenames", ())
        return (item.get_closest_marker("last_check") is not None, "shared_site_build" in fixtures,
                "context" not in fixtures)

    items.sort(key=order)


def pytest_collection_finish(session: pytest.Session) -> None:
    import api_server_run
    import test_site

    # What is loaded by now (modules, the collected tests) lives as long as
    # the run: the collector need not look at it again.
    gc.freeze()

    test_site.start_site_build(session)
    if not hasattr(session.config, "workerinput"):
        api_server_run.collected(session.config, [item.nodeid for item in session.items])


def pytest_unconfigure(config: pytest.Config) -> None:
    import api_server_run
    import test_site

    test_site.stop_site_build(config)
    api_server_run.unconfigure(config)


def flux_schemas(config: pytest.Config) -> Path | None:
    try:
        return schema_folder(config.getoption("--flux-schemas"), os.environ.get("FLUX_SCHEMAS"), PROJECT_ROOT)
    except SchemaError as error:
        raise pytest.UsageError(str(error)) from None


def selected_page(config: pytest.Config) -> str | None:
    page = config.getoption("--page")
    if page is None:
        return None
    rel = os.path.relpath(Path(page).resolve(), PROJECT_ROOT) if Path(page).exists() else page
    if not (PROJECT_ROOT / rel).is_file():
        raise pytest.UsageError(f"--page {page}: no such page (give a path like docs/promotion/platform.md)")
    return rel


@pytest.fixture(scope="session")
def report(request: pytest.FixtureRequest) -> Report:
    return request.config.stash[REPORT_KEY]


@pytest.fixture(scope="session")
def shared_site_build(request: pytest.FixtureRequest):
    """The run's one ``mkdocs build --strict`` (``test_site.shared_build``),
    possibly still running: a test calls its ``result()``."""
    import test_site

    return test_site.shared_build(request.config)


def collect_pages(config: pytest.Config) -> tuple[list, list]:
    """The blocks of every page (or of ``--page``), and what their
    extraction found wrong."""
    problems: list = []
    blocks = extract.collect(PROJECT_ROOT, problems=problems, page=selected_page(config))
    return blocks, problems


@pytest.fixture(scope="session")
def context(request: pytest.FixtureRequest, report: Report) -> Context:
    import workers

    blocks, problems = workers.pages(request.config, collect_pages)
    report.blocks = blocks
    return Context(
        root=PROJECT_ROOT,
        blocks=blocks,
        flux_schemas=flux_schemas(request.config),
        only_page=selected_page(request.config),
        problems=problems,
    )


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    report = config.stash.get(REPORT_KEY, None)
    if report is None or not (report.blocks or report.findings):
        return
    terminalreporter.ensure_newline()  # else the first line below it is blank after a run's progress
    terminalreporter.section("docs-test report")
    for line in report.lines():
        terminalreporter.write_line(line)
