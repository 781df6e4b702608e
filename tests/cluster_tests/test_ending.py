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
