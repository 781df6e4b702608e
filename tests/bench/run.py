"""Time the offline docs-test run, stage by stage, and as a whole.

    python tests/bench/run.py                     # stages, then the full pytest run
    python tests/bench/run.py --stages            # stages only
    python tests/bench/run.py --enforce           # exit 1 when the full run is over budget
    python tests/bench/run.py --flux-schemas=DIR  # passed on to the checks and to pytest
    python tests/bench/run.py --workers 0         # the full run in one process

The budget is 15 s wall for the full offline run (``pytest -n 2``, as ``nox -s
docs-test`` runs it, on two pytest-xdist workers) on a 2-core machine. Stages
are timed one after the other in this process (so they add up to more than the
full run, which overlaps the site build, runs subprocesses side by side and
the tests on two workers); the full run is timed as a separate ``pytest``
process, with its CPU time (workers and their subprocesses included) and its
slowest tests. Without pytest-xdist installed the full run is timed in one
process, and the output says so. Without ``--enforce`` the figures are only
printed and the exit status is 0. Nothing is written into the tree.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import pkgutil
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
sys.path.insert(0, str(TESTS))

from harness import checks, extract, site_build  # noqa: E402
from harness.flux_schemas import schema_folder  # noqa: E402
from harness.model import Context, Outcome  # noqa: E402

BUDGET = 15.0
SLOWEST = 10
WORKERS = 2  # as noxfile.py's DOCS_TEST_WORKERS


def timed(label: str, func):
    started = time.perf_counter()
    result = func()
    print(f"{time.perf_counter() - started:7.2f}s  {label}", flush=True)
    return result


def stages(flux_schemas: Path | None) -> None:
    site = timed("load mkdocs.yml, mkdocs-macros and pymdownx.snippets", lambda: extract.load_site(ROOT))
    pages = extract.pages(site)
    problems: list = []
    blocks = timed(f"extract {len(pages)} pages", lambda: extract.collect(ROOT, problems=problems))
    print(f"          {len(blocks)} blocks; Flux schemas: {flux_schemas or 'none (Flux objects skipped)'}")
    ctx = Context(ROOT, blocks, flux_schemas=flux_schemas, problems=problems)
    for info in sorted(pkgutil.iter_modules(checks.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"harness.checks.{info.name}")
        if not hasattr(module, "run"):
            continue
        try:
            findings = timed(f"check {info.name}", lambda: module.run(ctx))
        except Exception as error:  # a broken check is reported, the benchmark goes on
            print(f"          {info.name} raised {error!r}")
            continue
        tally = {o.value: sum(f.outcome is o for f in findings) for o in Outcome}
        print("          " + (", ".join(f"{n} {k}" for k, n in tally.items() if n) or "no findings"))
    code, _ = timed("mkdocs build --strict", lambda: site_build.start(ROOT).result())
    if code != 0:
        print(f"          exit status {code}")


def full_run(flux_schemas: Path | None, workers: int) -> float:
    """Run pytest as ``nox -s docs-test`` does; print its wall and CPU time,
    its result line and its slowest tests. Returns the wall time."""
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--durations={SLOWEST}"]
    if workers and importlib.util.find_spec("xdist") is None:
        print(f"          pytest-xdist is not installed: the full run is timed in one process, not on {workers} workers")
        workers = 0
    argv += ["-n", str(workers)] if workers else []
    if flux_schemas is not None:
        argv.append(f"--flux-schemas={flux_schemas}")
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lines = proc.stdout.strip().splitlines()
    result = lines[-1] if lines else proc.stderr.strip()[-200:]
    slowest = [ln for ln in lines if ln[:1].isdigit() and "s " in ln[:10] and "::" in ln]
    if slowest:
        print(f"          slowest {len(slowest)} of the full run:")
        for line in slowest:
            print(f"          {line}")
    how = f"pytest -n {workers}" if workers else "pytest, one process"
    print(f"{wall:7.2f}s  full offline run ({how}): {result}")
    print(f"          CPU {cpu:.2f}s (user + system, with subprocesses) on {os.cpu_count()} cores; "
          f"load average before the run {load:.2f}")
    return wall


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stages", action="store_true", help="time the stages only, not the full run")
    parser.add_argument("--enforce", action="store_true", help="exit 1 when the full run is over budget")
    parser.add_argument("--workers", type=int, default=WORKERS, metavar="N",
                        help=f"pytest-xdist workers for the full run (default {WORKERS}, as nox -s docs-test; "
                        "0: one process)")
    parser.add_argument("--flux-schemas", metavar="DIR", default=None,
                        help="Flux JSON schema folder (default: as pytest finds it)")
    args = parser.parse_args(argv)
    flux_schemas = schema_folder(args.flux_schemas, os.environ.get("FLUX_SCHEMAS"), ROOT)
    print(f"docs-test benchmark in {ROOT} ({os.cpu_count()} cores), budget {BUDGET:.0f}s wall for the full run")
    stages(flux_schemas)
    if args.stages:
        return 0
    wall = full_run(flux_schemas, args.workers)
    within = wall <= BUDGET
    print(f"budget {BUDGET:.0f}s: {'within' if within else 'OVER'} budget ({wall:.2f}s, "
          f"{BUDGET - wall:+.2f}s to spare)")
    return 1 if args.enforce and not within else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
