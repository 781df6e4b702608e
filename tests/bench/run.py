"""Time the offline docs-test run, stage by stage, and as a whole.

    python tests/bench/run.py           # stages, then the full pytest run
    python tests/bench/run.py --stages  # stages only

The budget is 15 s wall for the full offline run on a 2-core machine; the
figures go to stdout (nothing is written into the tree).
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
sys.path.insert(0, str(TESTS))

from harness import checks, extract  # noqa: E402
from harness.model import Context, Outcome  # noqa: E402

BUDGET = 15.0


def timed(label: str, func):
    started = time.perf_counter()
    result = func()
    print(f"{time.perf_counter() - started:7.2f}s  {label}", flush=True)
    return result


def main(argv: list[str]) -> int:
    print(f"docs-test benchmark in {ROOT}")
    site = timed("load mkdocs.yml, mkdocs-macros and pymdownx.snippets", lambda: extract.load_site(ROOT))
    pages = extract.pages(site)
    problems: list = []
    blocks = timed(f"extract {len(pages)} pages", lambda: extract.collect(ROOT, problems=problems))
    print(f"          {len(blocks)} blocks")
    ctx = Context(ROOT, blocks, flux_schemas=(ROOT / ".." / "shared" / "flux" / "schemas").resolve(), problems=problems)
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
        print("          " + ", ".join(f"{n} {k}" for k, n in tally.items() if n))
    with tempfile.TemporaryDirectory() as site_dir:
        timed("mkdocs build --strict", lambda: subprocess.run(
            [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", site_dir],
            cwd=ROOT, capture_output=True))
    if "--stages" in argv:
        return 0
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=ROOT,
                          capture_output=True, text=True)
    wall = time.perf_counter() - started
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr.strip()[-200:]
    print(f"{wall:7.2f}s  full offline run (pytest): {last}")
    print(f"budget {BUDGET:.0f}s: {'within' if wall <= BUDGET else 'OVER'} budget")
    return 0 if wall <= BUDGET else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
