"""Run steps, or only record them.

``LiveRunner`` executes each step (after the guard agrees, for steps that
change a cluster) and keeps a transcript; ``Recorder`` collects the steps so
``plan.render`` can print them. Both expose ``live`` so callers skip waiting
and asserting when nothing really ran.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from typing import Callable

from .guard import ContextGuard
from .plan import INHERITED_PATH, Step


# While a long step runs (flux bootstrap), how often its watcher looks.
WATCH_EVERY = 3.0
# While any step runs, how often its thread looks whether the tier is being
# taken down (a step of work in the background then ends at once).
CLOSING_EVERY = 0.5


def to_console(line: str) -> None:
    """Print ``line`` to stderr, and go on when it cannot be printed: after
    a Ctrl-C or a closed terminal the console may be gone (a closed pipe, a
    hung-up terminal), and the teardown that echoes its commands must still
    take everything down."""
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):  # EPIPE, EIO; ValueError: stderr already closed
        pass


# Threads of the teardown (deleting clusters side by side) are named so.
TEARDOWN_THREADS = "gwp-teardown"


class TierClosing(RuntimeError):
    """A step asked for by work still going on in the background (a cluster
    being made ahead, a proof) once the tier is being taken down: refused,
    so that work stops at its next step instead of making what the teardown
    must then wait for and take down again."""


class StepFailed(RuntimeError):
    def __init__(self, step: Step, proc: subprocess.CompletedProcess | None, detail: str = ""):
        self.step, self.proc = step, proc
        out = ""
        if proc is not None:
            out = "\n".join(x for x in (proc.stdout or "", proc.stderr or "") if x).strip()
            out = "\n".join(out.splitlines()[-40:])
        super().__init__(
            f"command failed{f' (exit {proc.returncode})' if proc is not None else ''}: "
            f"{' '.join(step.argv)}\n{detail or out}"
        )


class Recorder:
    """Collects steps without running them (``--plan``)."""

    live = False

    def __init__(self, guard: ContextGuard | None = None):
        self.guard = guard or ContextGuard()
        self.steps: list[Step] = []

    def run(self, step: Step, check: bool = True, while_waiting: Callable[[], None] | None = None
            ) -> subprocess.CompletedProcess:
        if step.context:
            self.guard.check_argv(step.argv, step.context, step.kubeconfig)
        self.steps.append(step)
        return subprocess.CompletedProcess(step.argv, 0, step.placeholder or "", "")

    def call(self, step: Step, action: Callable[[], object]) -> None:
        """A step done by library code (pytest-kind, the git server)."""
        self.steps.append(step)

    def echo(self, line: str) -> None:
        pass


class LiveRunner(Recorder):
    """Executes steps; echoes each command so the output shows the sequence."""

    live = True

    def __init__(self, guard: ContextGuard, kubectl: str, echo: Callable[[str], None] | None = None,
                 watch_every: float = WATCH_EVERY):
        super().__init__(guard)
        self.kubectl = kubectl
        self.watch_every = watch_every  # seconds between calls of a step's while_waiting
        # (start, end, what) of every step, monotonic seconds: where a run's time goes.
        self.timings: list[tuple[float, float, str]] = []
        self.started_at: dict[int, float] = {}
        self._echo = echo or to_console

    def echo(self, line: str) -> None:
        self._echo(line)

    def close_to_others(self) -> None:
        """From now on only this thread (the teardown's) and the threads it
        names ``TEARDOWN_THREADS`` run steps; every other thread's next step
        raises ``TierClosing``, and so does a step it is running: its
        command is stopped within ``CLOSING_EVERY`` seconds."""
        self._closing_thread = threading.get_ident()

    _closing_thread: int | None = None

    def refuse_after_close(self, step: Step, running: bool = False) -> None:
        owner = self._closing_thread
        if owner is None or threading.get_ident() == owner \
                or threading.current_thread().name.startswith(TEARDOWN_THREADS):
            return
        raise TierClosing(f"{'stopped' if running else 'not run'}, the cluster tier is being taken down: "
                          f"{step.note or ' '.join(step.argv[:3])}")

    def run(self, step: Step, check: bool = True, while_waiting: Callable[[], None] | None = None
            ) -> subprocess.CompletedProcess:
        """Run ``step``; ``while_waiting`` is called every ``WATCH_EVERY``
        seconds while it runs, and whatever it raises stops the step (a
        wait that a Flux failure made pointless)."""
        self.refuse_after_close(step)
        if step.context:
            self.guard.check_argv(step.argv, step.context, step.kubeconfig)
            self.guard.check_live(self.kubectl, step.context)
        self.steps.append(step)
        self.echo("+ " + " ".join(step.argv))
        env = self._env(step)
        started = time.monotonic()
        try:
            return self._run(step, check, while_waiting, env)
        finally:
            self.timed(step, started)

    def timed(self, step: Step, started: float) -> None:
        """Record how long a step took (``timings``: for the benchmark)."""
        self.timings.append((started, time.monotonic(), step.note or " ".join(step.argv[:4])))

    def _run(self, step: Step, check: bool, while_waiting, env: dict) -> subprocess.CompletedProcess:
        proc = self._run_watched(step, env, while_waiting)
        if check and proc.returncode != 0:
            raise StepFailed(step, proc)
        return proc

    def _run_watched(self, step: Step, env: dict, while_waiting: Callable[[], None] | None
                     ) -> subprocess.CompletedProcess:
        """The command, looked at every ``CLOSING_EVERY`` seconds while it
        runs: past its timeout it fails, once the tier is closing to this
        thread it is stopped (``TierClosing``), and ``while_waiting`` is
        called every ``watch_every`` seconds."""
        proc = subprocess.Popen(step.argv, stdin=subprocess.PIPE if step.stdin is not None else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=step.cwd, env=env)
        deadline = time.monotonic() + step.timeout if step.timeout else None
        watch_at = time.monotonic() + self.watch_every
        given = step.stdin
        try:
            while True:
                try:
                    out, err = proc.communicate(input=given, timeout=min(CLOSING_EVERY, self.watch_every))
                    return subprocess.CompletedProcess(step.argv, proc.returncode, out, err)
                except subprocess.TimeoutExpired:
                    given = None  # communicate sent it already
                self.refuse_after_close(step, running=True)
                now = time.monotonic()
                if deadline is not None and now > deadline:
                    raise StepFailed(step, None, f"timed out after {step.timeout}s")
                if while_waiting is not None and now >= watch_at:
                    while_waiting()
                    watch_at = time.monotonic() + self.watch_every
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()

    def call(self, step: Step, action: Callable[[], object]) -> None:
        self.refuse_after_close(step)
        self.steps.append(step)
        self.echo("+ " + " ".join(step.argv))
        started = time.monotonic()
        try:
            action()
        finally:
            self.timed(step, started)

    def _env(self, step: Step) -> dict[str, str]:
        inherited = os.environ.get("PATH", "")
        env = {**os.environ, **{k: v.replace(INHERITED_PATH, inherited) for k, v in step.env.items()}}
        if step.kubeconfig:
            env["KUBECONFIG"] = step.kubeconfig
        return env

    def start(self, step: Step, log):
        """Start ``step`` in the background (output to ``log``); the caller
        waits for it with ``finish``. Guarded like ``run``."""
        from . import processes

        self.refuse_after_close(step)
        if step.context:
            self.guard.check_argv(step.argv, step.context, step.kubeconfig)
            self.guard.check_live(self.kubectl, step.context)
        self.steps.append(step)
        self.started_at[id(step)] = time.monotonic()
        self.echo("+ " + " ".join(step.argv) + "   (in the background)")
        return processes.start(step.argv[0].rsplit("/", 1)[-1], step.argv, log, self._env(step),
                               cwd=step.cwd)

    def finish(self, process, step: Step, while_waiting: Callable[[], None] | None = None) -> None:
        """Wait for a background step; raise as ``run`` does when it fails.
        ``while_waiting`` as for ``run``."""
        try:
            self._finish(process, step, while_waiting)
        finally:
            self.timed(step, self.started_at.pop(id(step), time.monotonic()))

    def _finish(self, process, step: Step, while_waiting) -> None:
        deadline = time.monotonic() + step.timeout if step.timeout else None
        watch_at = time.monotonic() + self.watch_every
        while True:
            beat = min(CLOSING_EVERY, self.watch_every)
            if deadline is not None:
                beat = min(beat, max(0.0, deadline - time.monotonic()))
            try:
                code = process.proc.wait(timeout=beat)
                break
            except subprocess.TimeoutExpired as err:
                if deadline is not None and time.monotonic() >= deadline:
                    process.stop()
                    raise StepFailed(step, None, f"timed out after {step.timeout}s:\n{process.tail(30)}") from err
            try:
                self.refuse_after_close(step, running=True)
                if while_waiting is not None and time.monotonic() >= watch_at:
                    while_waiting()
                    watch_at = time.monotonic() + self.watch_every
            except BaseException:
                process.stop()
                raise
        if code != 0:
            raise StepFailed(step, None, f"exit {code}:\n{process.tail(40)}")
