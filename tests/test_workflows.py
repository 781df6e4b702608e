"""GitHub Actions workflows: actionlint on every workflow file and workflow
block, and the tools they install at the versions versions.yaml pins
(harness.checks.workflows)."""

from harness.checks import workflows
from harness.report import fail_on


def test_workflows(context, report):
    fail_on(report.add(workflows.run(context)))
