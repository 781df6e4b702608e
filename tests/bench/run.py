"""Time the offline docs-test run, stage by stage, and as a whole, five times.

    python tests/bench/run.py                     # stages, then five full pytest runs
    python tests/bench/run.py --stages            # stages only
    python tests/bench/run.py --runs 3            # three full runs instead of five
    python tests/bench/run.py --cold              # empty .tools/cache before each full run
    python tests/bench/run.py --enforce           # exit 1 when the median full run is over budget
    python tests/bench/run.py --flux-schemas=DIR  # passed on to the checks and to pytest
    python tests/bench/run.py --workers 0         # the full runs in one process

The budget is a median of at most 10 s wall over the full runs (``pytest -n 2
--dist loadgroup``, as ``nox -s docs-test`` runs it) on a 2-core machine.
What the figures include, so that they can be read honestly:

- Stages are timed one after the other in this process, each with its wall
  and CPU time and how many tool answers (kustomize builds, help texts,
  shellcheck and mermaid runs) it computed or read from ``.tools/cache``
  (``harness.build_cache``). They add up to more than a full run, which
  overlaps the site build, runs subprocesses side by side and the tests on
  two workers.
- Each full run is a separate ``pytest`` process: its wall time, its CPU time
  (workers and their subprocesses included), the load average of the
  machine just before it (other work on the machine slows it down), and how
  many answers it had to compute (new entries in ``.tools/cache``). The
  first run after a change to the tree computes what changed; later runs
  read it. ``--cold`` empties the cache before each run, for the figure
  without it.
- The start-up every worker repeats (interpreter, imports, collection) is
  timed once, and the slowest tests of the median run are listed.

Without pytest-xdist installed the full runs are timed in one process, and
the output says so. Without ``--enforce`` the figures are only printed and
the exit status is 0. Nothing is written into the tree (the cache lives in
the git-ignored ``.tools/``).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import pkgutil
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
sys.path.insert(0, str(TESTS))

from harness import build_cache, checks, extract, site_build  # noqa: E402
from harness.flux_schemas import schema_folder  # noqa: E402
from harness.model import Context, Outcome  # noqa: E402

BUDGET = 10.0
RUNS = 5
SLOWEST = 10
WORKERS = 2  # as noxfile.py's DOCS_TEST_WORKERS
DIST = "loadgroup"  # as noxfile.py's DOCS_TEST_DIST
PLUGINS = ["-p", "no:pytest-kind"]  # as noxfile.py's DOCS_TEST_ARGS


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def cache_note(before: dict[str, int]) -> str:
    after = build_cache.counts()
    changed = {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)}
    return "; " + ", ".join(f"{n} {k}" for k, n in sorted(changed.items())) if changed else ""


def timed(label: str, func):
    counts, cpu, started = build_cache.counts(), cpu_seconds(), time.perf_counter()
    result = func()
    wall = time.perf_counter() - started
    print(f"{wall:7.2f}s  {label} (CPU {cpu_seconds() - cpu:.2f}s{cache_note(counts)})", flush=True)
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
    code, _ = timed("mkdocs build --strict (a subprocess)", lambda: site_build.start(ROOT).result())
    if code != 0:
        print(f"          exit status {code}")


def cache_entries() -> dict[str, int]:
    base = ROOT / build_cache.CACHE_DIR
    return {p.name: len(list(p.glob("*.json"))) for p in base.iterdir() if p.is_dir()} if base.is_dir() else {}


def pytest_argv(flux_schemas: Path | None, workers: int, dist: str) -> tuple[list[str], int]:
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--durations={SLOWEST}", *PLUGINS]
    if workers and importlib.util.find_spec("xdist") is None:
        print(f"          pytest-xdist is not installed: the full runs are timed in one process, not on {workers} workers")
        workers = 0
    argv += ["-n", str(workers), "--dist", dist] if workers else []
    if flux_schemas is not None:
        argv.append(f"--flux-schemas={flux_schemas}")
    return argv, workers


def full_run(argv: list[str], cold: bool) -> dict:
    """One pytest run as ``nox -s docs-test`` does it."""
    if cold:
        shutil.rmtree(ROOT / build_cache.CACHE_DIR, ignore_errors=True)
    entries = cache_entries()
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)  # the environment nox gives
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    lines = proc.stdout.strip().splitlines()
    computed = {k: n - entries.get(k, 0) for k, n in cache_entries().items() if n != entries.get(k, 0)}
    return {
        "wall": wall, "load": load, "code": proc.returncode,
        "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "result": lines[-1] if lines else proc.stderr.strip()[-200:],
        "slowest": [ln for ln in lines if ln[:1].isdigit() and "s " in ln[:10] and "::" in ln],
        "computed": ", ".join(f"{n} {k}" for k, n in sorted(computed.items())) or "none: every answer from the cache",
    }


def startup(argv: list[str]) -> float:
    """What each worker repeats before its first test: interpreter, imports
    and collection (timed as ``pytest --collect-only`` in one process)."""
    started = time.perf_counter()
    subprocess.run([*argv[:4], *PLUGINS, "--collect-only", "-q"], cwd=ROOT, capture_output=True, text=True)
    return time.perf_counter() - started


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stages", action="store_true", help="time the stages only, not the full runs")
    parser.add_argument("--runs", type=int, default=RUNS, metavar="N", help=f"full runs to time (default {RUNS})")
    parser.add_argument("--cold", action="store_true", help="empty .tools/cache before each full run")
    parser.add_argument("--enforce", action="store_true", help="exit 1 when the median full run is over budget")
    parser.add_argument("--workers", type=int, default=WORKERS, metavar="N",
                        help=f"pytest-xdist workers for the full runs (default {WORKERS}, as nox -s docs-test; "
                        "0: one process)")
    parser.add_argument("--dist", default=DIST, help=f"pytest-xdist distribution mode (default {DIST})")
    parser.add_argument("--flux-schemas", metavar="DIR", default=None,
                        help="Flux JSON schema folder (default: as pytest finds it)")
    args = parser.parse_args(argv)
    flux_schemas = schema_folder(args.flux_schemas, os.environ.get("FLUX_SCHEMAS"), ROOT)
    print(f"docs-test benchmark in {ROOT} ({os.cpu_count()} cores), budget: median of {BUDGET:.0f}s wall over "
          f"{args.runs} full runs; load average now {os.getloadavg()[0]:.2f}")
    stages(flux_schemas)
    if args.stages or args.runs < 1:
        return 0
    command, workers = pytest_argv(flux_schemas, args.workers, args.dist)
    how = f"pytest -n {workers} --dist {args.dist}" if workers else "pytest, one process"
    runs = []
    for number in range(1, args.runs + 1):
        run = full_run(command, args.cold)
        runs.append(run)
        print(f"{run['wall']:7.2f}s  full offline run {number}/{args.runs} ({how}): {run['result']}")
        print(f"          CPU {run['cpu']:.2f}s on {os.cpu_count()} cores; load average before it "
              f"{run['load']:.2f}; computed: {run['computed']}")
    walls = [r["wall"] for r in runs]
    median = statistics.median(walls)
    middle = min(runs, key=lambda r: abs(r["wall"] - median))
    print(f"          start-up and collection, repeated by each worker: {startup(command):.2f}s")
    if middle["slowest"]:
        print(f"          slowest {len(middle['slowest'])} tests of the median run:")
        for line in middle["slowest"]:
            print(f"          {line}")
    loads = [r["load"] for r in runs]
    print(f"median {median:.2f}s wall (min {min(walls):.2f}s, max {max(walls):.2f}s) over {len(runs)} runs; "
          f"median CPU {statistics.median(r['cpu'] for r in runs):.2f}s; "
          f"load average before the runs {min(loads):.2f}-{max(loads):.2f}")
    within = median <= BUDGET
    failed = [r for r in runs if r["code"] != 0]
    if failed:
        print(f"          {len(failed)} of the runs failed: {failed[0]['result']}")
    print(f"budget {BUDGET:.0f}s: {'within' if within else 'OVER'} budget ({median:.2f}s, "
          f"{BUDGET - median:+.2f}s to spare)")
    return 1 if args.enforce and (not within or failed) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
