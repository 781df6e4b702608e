"""Time the cluster tier, and measure the memory of everything it starts.

    python tests/bench/cluster.py                  # kwok, the four proofs
    python tests/bench/cluster.py --cluster kind   # the same on kind (needs Docker)
    python tests/bench/cluster.py -k bootstraps    # only what -k selects (pytest's -k)

Runs ``pytest -p cluster.plugin --cluster=<provider> tests/test_cluster.py``
as a child process and, every half second, adds up the resident memory of
that process, its descendants and every process that names the tier's work
directory (kwokctl starts the control plane detached from its parent). It
prints

- the time until the three long-lived clusters are Ready (the three
  bootstrap proofs, which run first, from the start of the run),
- each proof's time, and the time of the whole tier (goal: 3 minutes on
  kwok, 12 on kind),
- the time until every cluster (the three long-lived ones and the sandbox)
  was bootstrapped with Flux running (goal on kind: 4 minutes),
- the peak memory of everything the tier started (goal: 4 GiB on kwok, 10
  GiB on kind, where the tier's dockerd, its containerd and every process in
  the nodes count too), as proportional set sizes (each shared page once:
  the memory the machine gives the tier), when it was reached, and which
  processes held the most then; and the peak of the resident set sizes
  (each shared page once per process, as earlier benches measured),
- how busy the machine's cores were over the run (from /proc/stat: a tier
  that keeps every core busy gains nothing from overlapping more of it),
- where the time went: the longest steps of the run, each with when it
  started and ended (the tier writes every step's timing to the file
  $GWP_CLUSTER_TIMINGS names; steps of clusters made side by side overlap).

The figures are printed, never enforced: the machine's load moves them.
Nothing is written into the tree; pytest's JUnit report goes to a temporary
file.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ElementTree
from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
# The tier's goals per provider: seconds until every
# cluster has Flux running, seconds for the whole tier, GiB at the peak.
GOALS = {"kwok": {"tier": 180.0, "memory": 4.0},
         "kind": {"bootstrapped": 240.0, "tier": 720.0, "memory": 10.0}}

MARKER = "gwp-work-"
POLL_NOTE = "poll the Flux objects"
PAGE = os.sysconf("SC_PAGE_SIZE")
PSS_EVERY = 4  # proportional set sizes every 4th sample (2 s)


def against(value: float, goal: float | None, unit: str) -> str:
    """``goal: 180 s, met`` / ``goal: 180 s, over by 11.7 s`` ('' without a goal)."""
    if goal is None:
        return ""
    return f"; goal: {goal:g} {unit}, " + ("met" if value <= goal else f"over by {value - goal:.1f} {unit}")


def processes() -> dict[int, tuple[int, int, str, str]]:
    """pid -> (parent pid, resident bytes, name, cwd+cmdline) of every process."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            name = stat[stat.index("(") + 1: stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2:].split()
            rss = int(fields[21]) * PAGE
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            try:
                cwd = os.readlink(entry / "cwd")
            except OSError:
                cwd = ""
            out[int(entry.name)] = (int(fields[1]), rss, name, cwd + " " + cmdline)
        except (OSError, ValueError, IndexError):
            continue
    return out


def cpu_times() -> tuple[float, float]:
    """(busy, total) seconds of all cores since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields) - idle) / ticks, sum(fields) / ticks


def tier_processes(root_pid: int, table: dict, marks=(MARKER,)) -> dict[int, tuple[int, int, str, str]]:
    """The run's process tree, plus every process that names a work
    directory or the tier's Docker engine (and what runs under them)."""
    mine = {root_pid} | {pid for pid, info in table.items() if any(mark in info[3] for mark in marks)}
    changed = True
    while changed:
        changed = False
        for pid, (ppid, *_rest) in table.items():
            if ppid in mine and pid not in mine:
                mine.add(pid)
                changed = True
    return {pid: info for pid, info in table.items() if pid in mine}


def proportional(pid: int) -> int:
    """The process's proportional set size in bytes: its private pages, and
    each page it shares divided by the number of processes sharing it (five
    kube-apiservers share one copy of its code). 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


class Sampler(threading.Thread):
    """The memory of everything the tier started, two ways: resident set
    sizes every half second (each shared page once per process that maps
    it, so the code of a binary five clusters run counts five times), and
    proportional set sizes every two seconds (the memory the machine gives
    the tier: each page once; reading them walks every process's page
    tables, which would load the machine the bench measures)."""

    def __init__(self, pid: int, marks=(MARKER,)):
        super().__init__(daemon=True)
        self.pid, self.stop = pid, threading.Event()
        self.peak, self.at_peak, self.peak_at = 0, Counter(), 0.0  # proportional
        self.peak_rss = 0
        self.started = time.monotonic()
        self.marks = marks

    def run(self) -> None:
        ticks = 0
        while not self.stop.wait(0.5):
            found = tier_processes(self.pid, processes(), self.marks)
            self.peak_rss = max(self.peak_rss, sum(info[1] for info in found.values()))
            ticks += 1
            if ticks % PSS_EVERY:
                continue
            sizes = {pid: proportional(pid) for pid in found}
            total = sum(sizes.values())
            if total > self.peak:
                self.peak, self.peak_at = total, time.monotonic() - self.started
                self.at_peak = Counter()
                for pid, (_ppid, _rss, name, _) in found.items():
                    self.at_peak[name] += sizes[pid]


def _as_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str]) -> int:
    # Ended from outside (a termination, a closed terminal) as by Ctrl-C: the
    # tier's run is ended and waited for, and the bench's folder goes.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _as_interrupt)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cluster", default="kwok", help="the provider (kwok or kind)")
    parser.add_argument("-k", dest="select", default=None, help="pytest -k expression")
    parser.add_argument("--timings", default=None, metavar="FILE",
                        help="also keep every step's timing (JSON: start, end, what) in FILE")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gwp-bench-") as tmp:
        junit = Path(tmp) / "junit.xml"
        command = [sys.executable, "-m", "pytest", "-p", "cluster.plugin", f"--cluster={args.cluster}",
                   "tests/test_cluster.py", "-p", "no:cacheprovider", f"--junitxml={junit}", "-q",
                   *(["-k", args.select] if args.select else [])]
        print("+ " + " ".join(command), flush=True)
        timings = Path(tmp) / "timings.json"
        started, cpu_before = time.monotonic(), cpu_times()
        child = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1",
                                                         "GWP_CLUSTER_TIMINGS": str(timings)})
        sys.path.insert(0, str(TESTS))
        import docker_engine
        from cluster.environment import MARK  # a moment among the tier's timings

        sampler = Sampler(child.pid, (MARKER, str(docker_engine.RUN_DIR)))
        sampler.start()
        try:
            code = child.wait()
        except KeyboardInterrupt:
            child.terminate()
            code = child.wait()
        sampler.stop.set()
        sampler.join()
        wall = time.monotonic() - started
        cpu_after = cpu_times()
        cases = []
        if junit.exists():
            for case in ElementTree.parse(junit).getroot().iter("testcase"):
                outcome = "failed" if case.find("failure") is not None or case.find("error") is not None else (
                    "skipped" if case.find("skipped") is not None else "passed")
                cases.append((case.get("name", "?"), float(case.get("time", 0)), outcome))
        steps = json.loads(timings.read_text(encoding="utf-8")) if timings.exists() else []
        marks = [(start, what[len(MARK):]) for start, _end, what in steps if what.startswith(MARK)]
        steps = [row for row in steps if not row[2].startswith(MARK)]
        if args.timings and timings.exists():
            Path(args.timings).write_text(timings.read_text(encoding="utf-8"), encoding="utf-8")
    print(f"\ncluster tier on {args.cluster} ({os.cpu_count()} cores, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} at the end)")
    goals = GOALS.get(args.cluster, {})
    bootstraps = [c for c in cases if c[0].startswith("test_cluster_bootstraps")]
    if len(bootstraps) == 3 and all(c[2] == "passed" for c in bootstraps):
        print(f"{sum(c[1] for c in bootstraps):8.1f} s  until development, staging and production are Ready")
    bootstrapped = [(at, what) for at, what in marks if what.endswith(" bootstrapped")]
    if bootstrapped:
        last = max(t for t, _ in bootstrapped)
        print(f"{last:8.1f} s  until {len(bootstrapped)} clusters were bootstrapped with Flux running, from the "
              f"tier's start ({', '.join(w.split()[0] for _, w in bootstrapped)}"
              f"{against(last, goals.get('bootstrapped'), 's')})")
    for name, seconds, outcome in cases:
        print(f"{seconds:8.1f} s  {name} ({outcome})")
    print(f"{wall:8.1f} s  the whole tier (pytest process, start to exit{against(wall, goals.get('tier'), 's')})")
    busy, total = cpu_after[0] - cpu_before[0], cpu_after[1] - cpu_before[1]
    if total > 0:
        print(f"{busy:8.1f} s  of CPU the machine used meanwhile (all processes): {busy / total:.0%} of its "
              f"{os.cpu_count()} cores busy on average")
    gib = sampler.peak / 2**30
    print(f"{gib:8.2f} GiB peak memory of everything the tier started, {sampler.peak_at:.0f} s into the run: "
          f"proportional set sizes, each shared page once{against(gib, goals.get('memory'), 'GiB')}")
    print(f"{sampler.peak_rss / 2**30:8.2f} GiB peak of the same as resident set sizes, each shared page once per "
          "process that maps it (the figure earlier benches printed)")
    for name, size in sampler.at_peak.most_common(8):
        print(f"{size / 2**20:12.0f} MiB  {name}")
    print_steps(steps)
    return code


def print_steps(steps: list, longest: int = 20) -> None:
    """The longest steps, and the time spent polling Flux, from the tier's timings."""
    if not steps:
        return
    polls = [end - start for start, end, what in steps if what.startswith(POLL_NOTE) or POLL_NOTE in what]
    print(f"\nwhere the time went ({len(steps)} steps; clusters made side by side overlap):")
    for start, end, what in sorted(steps, key=lambda s: s[0] - s[1])[:longest]:
        print(f"{end - start:8.1f} s  {start:6.1f}-{end:6.1f}  {what[:110]}")
    if polls:
        print(f"{sum(polls):8.1f} s  in {len(polls)} polls of the Flux objects (kubectl get; each "
              f"{sum(polls) / len(polls):.2f} s on average)")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
