"""pytest options of the cluster tier. Load with ``-p cluster.plugin`` (the
``e2e`` nox session does).

    --cluster PROVIDER   run the cluster tier on PROVIDER (kwok, kind, or auto)
    --plan               print the commands the tier would run; run none
    --keep-cluster       (pytest-kind's option) keep clusters and registry
"""

from __future__ import annotations

import pytest

from . import tier


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cluster tier")
    group.addoption("--cluster", default=None, metavar="PROVIDER",
                    help="run the cluster tier with this provider (kwok, kind, auto); default $DOCS_TEST_CLUSTER")
    group.addoption("--plan", action="store_true",
                    help="print the exact command sequence of the cluster tier and run none of it")


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    ran = tier.LIVE_RUN
    if ran:
        terminalreporter.section("cluster tier")
        terminalreporter.write_line(f"provider {ran['provider']}: {', '.join(ran['clusters']) or 'no cluster'} made")
        terminalreporter.write_line("real: " + ran["real"])
        if ran["simulated"]:
            terminalreporter.write_line("simulated: " + ran["simulated"])
        for note in ran.get("notes") or []:
            terminalreporter.write_line("note: " + note)
    if not config.getoption("--plan"):
        return
    terminalreporter.section("cluster tier plan")
    provider = tier.requested_provider(config) or "kind"
    try:
        text = tier.build_plan(provider=provider)
    except Exception as err:  # say why; the plan is the product of this option
        terminalreporter.write_line(f"could not build the plan: {err}")
        return
    for line in text.splitlines():
        terminalreporter.write_line(line)
