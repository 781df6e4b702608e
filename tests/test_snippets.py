"""Includes resolve, section markers pair up, and block metadata is valid."""

from harness.checks import metadata, snippets
from harness.report import fail_on


def test_includes_and_section_markers(context, report):
    fail_on(report.add(snippets.run(context)))


def test_block_metadata(context, report):
    fail_on(report.add(metadata.run(context)))
