"""Shell blocks and scripts: shellcheck, local runs with their expected
output, and commands checked against the tools' own help."""

from harness.checks import cli_help, run_local, shellcheck
from harness.report import fail_on


def test_shellcheck(context, report):
    fail_on(report.add(shellcheck.run(context)))


def test_local_blocks_and_output(context, report):
    fail_on(report.add(run_local.run(context)))


def test_cli_flags_against_help(context, report):
    fail_on(report.add(cli_help.run(context)))
