"""Host processes the cluster tier starts (Flux controllers, the registry),
and the checks that nothing of them outlives a run.

Each process runs in a session of its own, so a Ctrl-C at the terminal reaches
the test process first and teardown stops the others in order, and its output
goes to a log file the artifacts collection reads.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


class PortInUse(RuntimeError):
    pass


def port_is_bound(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def require_free(ports: dict[str, int], owner: str) -> None:
    """Refuse to start when a port the tier is about to use answers already."""
    taken = [f"{what} {port}" for what, port in ports.items() if port_is_bound(port)]
    if taken:
        raise PortInUse(
            f"{owner}: port(s) already in use on 127.0.0.1: {', '.join(taken)}. An earlier run may have "
            "left processes behind: `nox -s cluster-clean` stops them (it only touches the tier's own)"
        )


def wait_port(port: int, bound: float, what: str, process: "HostProcess | None" = None,
              host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if port_is_bound(port, host):
            return
        if process is not None and process.proc.poll() is not None:
            raise RuntimeError(f"{what} exited ({process.proc.returncode}) before listening on {port}; "
                               f"its log: {process.log}\n{process.tail()}")
        time.sleep(0.2)
    raise TimeoutError(f"{what} did not listen on {host}:{port} within {bound:.0f}s"
                       + (f"; its log: {process.log}\n{process.tail()}" if process else ""))


@dataclass
class HostProcess:
    name: str
    argv: list[str]
    log: Path
    proc: subprocess.Popen

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace: float = 10) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; waits for the exit."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        # The group may hold children of the process; they go with it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)


def stop_all(running: list[HostProcess], grace: float = 10) -> None:
    """Stop several processes at once: SIGTERM to all, then wait."""
    for process in running:
        if process.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.proc.pid, signal.SIGTERM)
    for process in running:
        process.stop(grace)


def start(name: str, argv: list[str], log: Path, env: dict[str, str], cwd: Path | None = None) -> HostProcess:
    log.parent.mkdir(parents=True, exist_ok=True)
    handle = open(log, "ab")
    try:
        proc = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, cwd=cwd, start_new_session=True)
    finally:
        handle.close()
    return HostProcess(name, argv, log, proc)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie has exited; only its parent has not read its status yet.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def wait_pids_gone(pids: list[int], bound: float) -> list[int]:
    """Wait until none of ``pids`` runs; returns those still running at the bound."""
    deadline = time.monotonic() + bound
    alive = [p for p in pids if pid_alive(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)  # a process that was sent a signal is usually gone within this
        alive = [p for p in alive if pid_alive(p)]
    return alive


def terminate_pids(pids: list[int], grace: float) -> None:
    """SIGTERM to each of ``pids``, SIGKILL to those still running after
    ``grace`` seconds; returns once none runs (or 10 s after the SIGKILL)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    left = wait_pids_gone(pids, grace)
    kill_pids(left)
    wait_pids_gone(left, 10)


def kill_pids(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def processes_with_marker(marker: str) -> list[int]:
    """PIDs of processes the tier started: their command line, working
    directory or KUBECONFIG names the tier's work directory (``marker``, or
    any ``gwp-work-`` folder). Found through /proc; never this process."""
    out = []
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            kubeconfig = next((e[11:].decode(errors="replace") for e in environ if e.startswith(b"KUBECONFIG=")), "")
        except OSError:
            kubeconfig = ""
        if any(marker in text for text in (cmdline, cwd, kubeconfig)) and pid_alive(int(entry.name)):
            out.append(int(entry.name))
    return out
