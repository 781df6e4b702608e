"""The harness on several pytest-xdist workers (``pytest -n 2``): the same
report, one site build, and the tree compared after every worker finished.

- Report: each worker records which test added which findings; when it
  finishes it sends them, with the blocks, to the controlling process
  (``config.workeroutput``). The controller puts them back in the order of
  the collected tests, the order a run in one process adds them in, so the
  report reads the same.
- Site build: the controller starts the one strict build as soon as a
  worker's collection includes ``test_site_builds_strict`` and publishes it;
  the test attaches to it in whichever worker runs it (``harness.site_build``).
- Tree: the workers compare against the state the controller recorded when
  the run started. After every worker finished, the controller compares once
  more; a change there fails the run as an error of
  ``test_working_tree_unchanged`` with the test's message, since it may come
  from a test that ran on another worker after the check.
- Pages: every worker's checks read the blocks of every page
  (``harness.extract.collect``, a quarter of a second). The controller
  collects them once, beside the workers' start-up, and hands them over
  through a file; a worker that finds none there (the collection failed)
  collects them itself, and reports what failed as a run in one process does.
- Checked-by marks: a worker sees only its own findings, so the controller
  holds the marks to every worker's findings once all finished, and a
  mismatch fails the run as an error of
  ``test_every_mark_names_only_checks_that_ran`` (``tests/test_marks.py``).

Without pytest-xdist (or with ``-n 0``) none of this is registered and the
run is serial, as before.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import threading
import time
import warnings
from pathlib import Path

import pytest

import api_server_run
import test_marks
import test_site
from harness import site_build
from harness.model import PROJECT_ROOT
from harness.report import Report

FINDINGS_OUTPUT = "docs_test_findings"
PAGES_INPUT = "docs_test_pages"
MARKS_CHECK = "test_every_mark_names_only_checks_that_ran"
# How long a worker waits for the controller's collection of the pages
# before it collects them itself.
PAGES_WAIT = 60.0


def register(config: pytest.Config, report: Report, collect_pages) -> None:
    """Register the controller's or the worker's half, when the run is
    distributed; nothing otherwise. ``collect_pages(config)`` returns the
    run's (blocks, extraction problems)."""
    if hasattr(config, "workerinput"):
        config.pluginmanager.register(Worker(report), "docs-test-worker")
    elif distributed(config):
        config.pluginmanager.register(Controller(config, report, collect_pages), "docs-test-controller")


def pages(config: pytest.Config, collect_pages) -> tuple[list, list]:
    """The run's (blocks, extraction problems): on a worker, what the
    controller collected; else (or when that failed) collected here."""
    path = getattr(config, "workerinput", {}).get(PAGES_INPUT)
    if path:
        deadline = time.monotonic() + PAGES_WAIT
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.01)
        try:
            data = Path(path).read_bytes()
        except OSError:
            data = b""
        if data:
            return pickle.loads(data)
    return collect_pages(config)


def ungrouped_tests(config, items: list) -> list[str]:
    """The tests marked ``xdist_group`` that ``--dist loadgroup`` will not
    keep together: pytest-xdist groups a test by a ``@group`` suffix it adds
    to the test's node id on the worker, which a pytest whose node ids are
    built otherwise drops."""
    if not config.getvalue("loadgroup"):
        return []
    return [item.nodeid for item in items if item.get_closest_marker("xdist_group") and "@" not in item.nodeid]


def _collect_pages_into(path: Path, config: pytest.Config, collect_pages) -> None:
    """The controller's collection, written whole (an empty file when it
    failed: each worker then collects, and fails, as a run in one process)."""
    try:
        data = pickle.dumps(collect_pages(config))
    except BaseException:  # noqa: BLE001 - reported by the workers' own attempt
        data = b""
    part = path.with_suffix(".part")
    part.write_bytes(data)
    os.replace(part, path)


def distributed(config: pytest.Config) -> bool:
    """Whether this process will hand the tests to xdist workers (xdist's own
    test, read before its plugin registers the distributed session)."""
    return (not config.option.collectonly and config.getoption("dist", "no") != "no"
            and bool(config.getoption("tx", None)))


class Worker:
    def __init__(self, report: Report) -> None:
        self.report = report
        self.position: dict[str, int] = {}
        # (position of the test in the collection, the findings it added)
        self.added: list[tuple[int, list]] = []

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.position = {item.nodeid: n for n, item in enumerate(session.items)}
        ungrouped = ungrouped_tests(session.config, session.items)
        if ungrouped:
            warnings.warn(pytest.PytestWarning(
                f"--dist loadgroup does not group {len(ungrouped)} tests marked xdist_group (the first: "
                f"{ungrouped[0]}): this pytest and pytest-xdist do not work together on it, so each group's "
                "module fixtures start on every worker; pin the pytest requirements.txt names"))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem):
        first = len(self.report.findings)
        try:
            return (yield)
        finally:
            added = self.report.findings[first:]
            if added:
                self.added.append((self.position.get(item.nodeid, len(self.position)), added))

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        counted = sum(len(findings) for _, findings in self.added)
        if counted < len(self.report.findings):  # added outside any test: after them all
            self.added.append((len(self.position), self.report.findings[counted:]))
        session.config.workeroutput[FINDINGS_OUTPUT] = pickle.dumps((self.report.blocks, self.added))


class Controller:
    def __init__(self, config: pytest.Config, report: Report, collect_pages) -> None:
        self.config = config
        self.report = report
        self.added: list[tuple[int, list]] = []
        self.site_folder = tempfile.TemporaryDirectory(prefix="docs-test-site-")
        self.site_build_started = False
        self.pages_folder = tempfile.TemporaryDirectory(prefix="docs-test-pages-")
        self.pages_file = Path(self.pages_folder.name) / "pages.pickle"
        self.pages_thread = threading.Thread(target=_collect_pages_into, name="docs-test-pages", daemon=True,
                                             args=(self.pages_file, config, collect_pages))
        self.tree_check: pytest.TestReport | None = None  # its call phase, when it ran
        self.marks_check: pytest.TestReport | None = None  # the same for the marks' proof

    # -- what each worker gets, and the one site build ------------------------

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node) -> None:
        if not self.pages_thread.is_alive() and not self.pages_file.exists():
            self.pages_thread.start()  # beside the workers' start-up
        node.workerinput[PAGES_INPUT] = str(self.pages_file)
        node.workerinput[test_site.TREE_STATUS_INPUT] = self.config._docs_test_status
        node.workerinput[test_site.SITE_BUILD_INPUT] = self.site_folder.name
        node.workerinput[api_server_run.INPUT] = api_server_run.worker_input(self.config)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node, ids: list[str]) -> None:
        api_server_run.collected(self.config, ids)
        if self.site_build_started or self.config.option.collectonly:
            return
        if any(i.split("::")[-1] == "test_site_builds_strict" for i in ids):
            self.site_build_started = True
            build = site_build.start(PROJECT_ROOT, folder=self.site_folder)
            build.publish()
            self.config.stash[test_site.SITE_BUILD_KEY] = build  # stopped and removed at the end

    # -- findings --------------------------------------------------------------

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error) -> None:
        output = getattr(node, "workeroutput", {}).get(FINDINGS_OUTPUT)
        if output is None:  # the worker crashed; xdist reports that
            return
        blocks, added = pickle.loads(output)
        if blocks and not self.report.blocks:
            self.report.blocks = blocks
        self.added.extend(added)
        self.added.sort(key=lambda entry: entry[0])  # stable: a worker's own order is kept
        self.report.findings = [f for _, findings in self.added for f in findings]

    # -- the tree, after every worker finished ----------------------------------

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" and report.nodeid.split("::")[-1] == test_site.TREE_CHECK:
            self.tree_check = report
        if report.when == "call" and report.nodeid.split("::")[-1] == MARKS_CHECK:
            self.marks_check = report

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session):
        try:
            return (yield)
        finally:
            self.compare_tree_again()
            self.prove_marks()

    def compare_tree_again(self) -> None:
        """When the tree check ran and passed on its worker, compare again now
        that every worker finished; report a change as an error of that test."""
        if self.tree_check is None or not self.tree_check.passed:
            return
        message = test_site.tree_changes(self.config._docs_test_status, test_site.tree_state())
        if message is None:
            return
        self.config.hook.pytest_runtest_logreport(report=pytest.TestReport(
            nodeid=self.tree_check.nodeid, location=self.tree_check.location, keywords={},
            outcome="failed", longrepr=message, when="teardown", sections=[], duration=0.0,
        ))

    # -- the checked-by marks, against every worker's findings --------------------

    def prove_marks(self) -> None:
        """When the marks' test ran (its worker saw only its own findings),
        hold the marks to all findings now; a mismatch is an error of that
        test."""
        if self.marks_check is None or not self.marks_check.passed:
            return
        self.report.proof = result = test_marks.prove(self.config, self.report)
        message = test_marks.proof_failure(result)
        if message is None:
            return
        self.config.hook.pytest_runtest_logreport(report=pytest.TestReport(
            nodeid=self.marks_check.nodeid, location=self.marks_check.location, keywords={},
            outcome="failed", longrepr=message, when="teardown", sections=[], duration=0.0,
        ))

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if not self.site_build_started:
            self.site_folder.cleanup()
        if self.pages_thread.is_alive():
            self.pages_thread.join(PAGES_WAIT)
        self.pages_folder.cleanup()
