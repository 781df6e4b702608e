"""Diagrams: every mermaid block parses with the pinned mermaid
(harness.checks.diagrams). How they look in a browser is checked by
`nox -s docs-screenshots`."""

from harness.checks import diagrams
from harness.report import fail_on


def test_diagrams_parse(context, report):
    fail_on(report.add(diagrams.run(context)))
