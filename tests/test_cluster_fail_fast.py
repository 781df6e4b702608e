"""A broken tree fails the cluster tier fast, once, at the right place.

Each case copies the tree, breaks it the way a writer might, and runs the
cluster tier on the copy in a child pytest, limited to the tests it names
(one cluster where the failure is Flux's): the child must fail with the
object's own message and the tree and page lines that define and show it,
within ``WITHIN`` seconds of Flux reporting the failure, and report it once
(the other tests that need the same part are marked not run for it). Runs
with the cluster tier on kwok only (``nox -s e2e``), on ports apart from
any cluster of this run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from cluster import tier
from harness import scratch
from harness.model import PROJECT_ROOT

pytestmark = pytest.mark.cluster
WITHIN = 120  # seconds from Flux's report of the failure to the tier's
BOUND = 900  # the child's whole run, at most (it is killed after)
CHILD_BASE_PORT = 25000


@dataclass(frozen=True)
class Broken:
    """One way to break the tree, and what the child must then say."""

    file: str
    old: str
    new: str
    select: str  # pytest -k for the child
    expect: tuple[str, ...]  # regular expressions, each found exactly once
    not_run: int = 0  # tests of the child marked not run for the same failure
    from_flux: bool = True  # the failure is Flux's (its age is in the message)


CASES = {
    # The API server refuses a label value: Flux's dry-run of the
    # platform-baseline layer fails, and the Namespace is named at its line.
    "a manifest the API server rejects": Broken(
        "platform/baseline/namespaces.yaml", "gitops.example.org/workload-policy: enforced",
        'gitops.example.org/workload-policy: "not a label value!"', "bootstraps_and_every_object and development",
        (r"platform/baseline/namespaces\.yaml:\d+: Namespace podinfo is rejected by the API server, applied by "
         r"Kustomization flux-system/platform-baseline",
         r"Namespace/podinfo dry-run failed \(Invalid\)")),
    # A chart version the tier's mirror cannot serve: the setup stops before
    # any Flux object waits for it, and says which line pins it.
    "a chart version that cannot be served": Broken(
        "apps/production/kustomization.yaml", 'value: {tag: "6.9.2"}', 'value: {tag: "6.9.99"}', "bootstraps_and_every_object",
        (r"docs/[\w/.-]+\.md:\d+ \(apps/production/kustomization\.yaml:\d+\): the tree pins "
         r"oci://ghcr\.io/stefanprodan/charts/podinfo to 6\.9\.99",),
        not_run=2, from_flux=False),
}


SUMMARY = re.compile(r"^=+ short test summary info =+$", re.MULTILINE)


def report_body(output: str) -> str:
    """The child's output up to pytest's short summary. The summary repeats
    each failure's message: cut to one line on a terminal, whole where pytest
    believes it runs in CI (``$CI`` or ``$BUILD_NUMBER`` set), so what the
    tier reported is counted before it."""
    found = SUMMARY.search(output)
    return output[:found.start()] if found else output


def test_report_body_ends_where_pytest_summary_begins() -> None:
    output = ("E  platform/x.yaml:3: rejected\n=== short test summary info ===\n"
              "FAILED t.py::a - Failed: one:\n  platform/x.yaml:3: rejected\n")
    assert report_body(output).count("platform/x.yaml:3: rejected") == 1
    assert report_body("no summary") == "no summary"


@pytest.mark.parametrize("case", list(CASES))
def test_a_broken_tree_fails_fast_once_with_its_location(request, tmp_path: Path, case: str) -> None:
    provider = tier.requested_provider(request.config)
    if provider != "kwok":
        pytest.skip(tier.NOT_REQUESTED if not provider else f"checked on the kwok provider (this run: {provider})")
    from cluster import preflight

    found = preflight.check(provider="kwok")
    if not found.ok:
        pytest.skip(found.skip_reason())
    broken = CASES[case]
    copy = scratch.snapshot(PROJECT_ROOT, tmp_path / "tree")
    target = copy / broken.file
    text = target.read_text(encoding="utf-8")
    assert text.count(broken.old) == 1, f"{broken.file}: the case expects one `{broken.old}` (the tree changed?)"
    target.write_text(text.replace(broken.old, broken.new), encoding="utf-8")

    started = time.monotonic()
    child = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "cluster.plugin", "--cluster=kwok", "-p", "no:cacheprovider",
         "-q", "tests/test_cluster.py", "-k", broken.select],
        cwd=copy, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "GWP_KWOK_BASE_PORT": str(CHILD_BASE_PORT)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=BOUND,
    )
    took = time.monotonic() - started
    output = child.stdout
    tail = output[-6000:]
    print(f"{case}: the child ran {took:.0f}s\n{tail}")
    assert child.returncode == 1, f"the broken tree did not fail the tier (exit {child.returncode}):\n{tail}"
    assert "1 failed" in output, f"expected exactly one failed test:\n{tail}"
    body = report_body(output)
    for pattern in broken.expect:
        hits = re.findall(pattern, body)
        assert len(hits) == 1, f"expected /{pattern}/ once, found it {len(hits)} times:\n{tail}"
    not_run = re.findall(r"SKIPPED \[\d+\] .*not run: .*\(reported by tests/test_cluster\.py::", output)
    counted = sum(int(n) for n in re.findall(r"SKIPPED \[(\d+)\] .*not run: ", output))
    assert counted == broken.not_run, f"expected {broken.not_run} tests marked not run, found {counted}:\n{tail}"
    assert bool(not_run) == bool(broken.not_run)
    if broken.from_flux:
        reported = re.search(r"reported (\d+)s before this report", output)
        assert reported, f"the message does not say when Flux reported the failure:\n{tail}"
        assert int(reported.group(1)) <= WITHIN, (
            f"the tier reported the failure {reported.group(1)}s after Flux did (goal: {WITHIN}s)")
    assert "Traceback" not in output, f"a failure of the tree is reported without a traceback:\n{tail}"
