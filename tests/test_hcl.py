"""Terraform/OpenTofu: every .tf file of the tree and every hcl block parses
with HCL's own parser and is laid out as its formatter lays it out
(harness.checks.hcl_format)."""

from harness.checks import hcl_format
from harness.report import fail_on


def test_hcl_parses_and_is_formatted(context, report):
    fail_on(report.add(hcl_format.run(context)))
