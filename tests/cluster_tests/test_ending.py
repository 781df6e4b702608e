"""A run ended from outside still takes everything down: the pieces that
do not need a cluster (the live proof is tests/test_cluster_interrupt.py)."""

from __future__ import annotations

import ast
import os
import signal
import sys

from cluster import environment, runner
from harness.model import PROJECT_ROOT


def test_the_console_gone_does_not_stop_the_teardown(monkeypatch) -> None:
    read, write = os.pipe()
    os.close(read)
    closed = os.fdopen(write, "w")
    monkeypatch.setattr(sys, "stderr", closed)
    runner.to_console("+ kwokctl delete cluster")  # EPIPE: nothing raised
    closed_too = open(os.devnull, "w")
    closed_too.close()
    monkeypatch.setattr(sys, "stderr", closed_too)
    runner.to_console("+ docker rm --force gwp-registry")  # ValueError: nothing raised


def test_a_closed_terminal_and_a_termination_unwind_like_ctrl_c() -> None:
    assert {signal.SIGTERM, signal.SIGHUP} <= set(environment.ENDING_SIGNALS)
    try:
        environment._ended_as_interrupt(signal.SIGHUP, None)
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError("SIGHUP did not unwind as an interrupt")


def test_nox_lets_every_command_finish_after_ctrl_c() -> None:
    """nox terminates a command 0.3 s after Ctrl-C unless told to wait; the
    noxfile runs every command through its ``run``, which tells it."""
    tree = ast.parse((PROJECT_ROOT / "noxfile.py").read_text(encoding="utf-8"))
    direct = []
    for function in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name != "run"):
        for call in (n for n in ast.walk(function) if isinstance(n, ast.Call)):
            if isinstance(call.func, ast.Attribute) and call.func.attr == "run" and \
                    isinstance(call.func.value, ast.Name) and call.func.value.id == "session":
                direct.append(f"noxfile.py:{call.lineno}")
    assert not direct, f"session.run outside run(): {direct}; use run(session, ...)"
    helper = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "run")
    assert "interrupt_timeout=None" in ast.unparse(helper)


def test_background_work_stops_at_its_next_step_once_the_teardown_begins() -> None:
    """A cluster still being made ahead (or a proof) when the run ends must
    not go on making what the teardown then waits for and deletes again:
    its next step is refused; the teardown's own steps, in its thread and
    in the threads it names, still run."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from cluster.guard import ContextGuard
    from cluster.plan import Step

    live = runner.LiveRunner(ContextGuard(), "kubectl", echo=lambda line: None)
    step = Step(["true"], note="a step")
    outcome: list[object] = []

    def background() -> None:
        try:
            live.run(step)
            outcome.append("ran")
        except runner.TierClosing as refused:
            outcome.append(refused)

    first = threading.Thread(target=background)
    first.start()
    first.join()
    assert outcome == ["ran"], "before the teardown, every thread runs steps"

    live.close_to_others()
    later = threading.Thread(target=background, name="gwp-cluster-staging")
    later.start()
    later.join()
    assert isinstance(outcome[-1], runner.TierClosing) and "being taken down: a step" in str(outcome[-1])
    live.run(step)  # the teardown's own thread
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=runner.TEARDOWN_THREADS) as pool:
        assert pool.submit(live.run, step).result().returncode == 0


def test_a_step_running_in_the_background_is_stopped_once_the_teardown_begins(monkeypatch) -> None:
    """A command of background work that is still running when the run ends
    (a script waiting on a cluster the teardown deletes) is stopped within
    a beat, instead of holding the teardown until its own timeout."""
    import tempfile
    import threading
    import time
    from pathlib import Path

    from cluster.guard import ContextGuard
    from cluster.plan import Step

    monkeypatch.setattr(runner, "CLOSING_EVERY", 0.05)
    live = runner.LiveRunner(ContextGuard(), "kubectl", echo=lambda line: None)
    outcome: list[object] = []
    started = threading.Event()

    def background(step: Step, starts: bool) -> None:
        try:
            started.set()
            if starts:
                process = live.start(step, log)
                live.finish(process, step)
            else:
                live.run(step)
            outcome.append("ran to its end")
        except runner.TierClosing as stopped:
            outcome.append(stopped)

    log = Path(tempfile.mkdtemp()) / "step.log"
    for starts in (False, True):
        outcome.clear()
        started.clear()
        live._closing_thread = None
        step = Step(["sleep", "30"], note="a script waiting on a deleted cluster", timeout=60)
        thread = threading.Thread(target=background, args=(step, starts), name="gwp-proof-x")
        thread.start()
        started.wait()
        time.sleep(0.1)
        began = time.monotonic()
        live.close_to_others()
        thread.join(timeout=10)
        assert not thread.is_alive(), "the step kept its thread past the teardown's start"
        assert time.monotonic() - began < 2
        assert isinstance(outcome[-1], runner.TierClosing) and "stopped, the cluster tier is being taken down" \
            in str(outcome[-1])
