"""The Docker engine the kind tier (and the toolchain's image builds) run on.

A Docker the user already runs (Docker Desktop, a system dockerd, Podman's
Docker API; ``DOCKER_HOST`` names another) is used as it is. Where an engine
is installed but no daemon answers and we are root, the tier starts its own
``dockerd`` on a private socket, so nothing else on the machine takes it
for the system's Docker, and stops it at the end:

    socket, pid file, log, runtime state   /run/gitops-whitepaper-docker/
    images and containers                  /var/lib/gitops-whitepaper-docker/  ($GWP_DOCKER_DATA_ROOT)

The data root outlives a run, so the node and workload images are loaded
once. The engine is started with

- no default bridge (``docker0``): the tier makes its own network;
- DNS for containers on 127.0.0.1, so Docker's resolver never forwards a
  query off the machine (nothing answers there: a name that is not a
  container's fails at once);
- where the machine's capability bounding set lacks CAP_SYS_RESOURCE (some
  VMs), a runtime wrapper as its default runtime: privileged containers (a
  kind node is one) ask runc for every capability and runc fails with
  ``unable to apply caps: operation not permitted``; the wrapper drops that
  one capability from the container's spec (``create``/``run``) and from a
  ``docker exec``'s process (``exec``), then runs runc.

dockerd adds its chains and rules to the host's firewall (``DOCKER``,
``DOCKER-USER``, ``DOCKER-ISOLATION-*`` and the jumps to them) and leaves
them when it stops. The tier notes Docker's rules before it starts its own
engine and, once that engine has stopped and no other dockerd runs, takes
out those it added (``FIREWALL_BEFORE``, ``remove_added_rules``).

``python -m docker_engine start|stop|status`` drives it by hand.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

RUN_DIR = Path("/run/gitops-whitepaper-docker")
SOCKET = RUN_DIR / "docker.sock"
PID_FILE = RUN_DIR / "dockerd.pid"
LOG = RUN_DIR / "dockerd.log"
WRAPPER = RUN_DIR / "runc-without-sys-resource"
EXEC_ROOT = RUN_DIR / "exec"
DATA_ROOT_ENV = "GWP_DOCKER_DATA_ROOT"
CAP_SYS_RESOURCE = 24
START_BOUND = 60
STOP_BOUND = 60
# Docker's firewall rules as they were before the tier's engine started.
FIREWALL_BEFORE = RUN_DIR / "firewall-before.json"
FIREWALL_TABLES = ("filter", "nat")


class EngineUnavailable(RuntimeError):
    """No engine answers and none can be started here; the message says what to start."""


def data_root() -> Path:
    return Path(os.environ.get(DATA_ROOT_ENV) or "/var/lib/gitops-whitepaper-docker")


def private_host() -> str:
    return f"unix://{SOCKET}"


@dataclass
class Engine:
    """An engine that answers. ``host`` is its DOCKER_HOST (None: the
    client's default); ``own`` says the tier started it and stops it."""

    docker: str
    host: str | None
    own: bool = False
    notes: list[str] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        """The environment for docker and kind: DOCKER_HOST when it is ours;
        the classic builder (images are built from local bases only)."""
        return {"DOCKER_BUILDKIT": "0", **({"DOCKER_HOST": self.host} if self.host else {})}

    def run(self, *args: str, check: bool = True, timeout: float = 600, stdin=None,
            capture: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([self.docker, *args], env={**os.environ, **self.env()}, timeout=timeout,
                              stdin=stdin, capture_output=capture, text=capture)
        if check and proc.returncode != 0:
            detail = (proc.stderr or proc.stdout or "").strip()[-1500:] if capture else ""
            raise RuntimeError(f"docker {' '.join(args[:3])} ... exited {proc.returncode}: {detail}")
        return proc

    def stop(self) -> None:
        """Stop the engine if the tier started it (a user's engine is left alone)."""
        if self.own:
            stop_own()


def answers(docker: str, host: str | None, timeout: float = 20) -> str | None:
    """None when ``docker info`` reaches an engine at ``host``; else why not."""
    env = {**os.environ, **({"DOCKER_HOST": host} if host else {})}
    try:
        proc = subprocess.run([docker, "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                              timeout=timeout, env=env)
    except (OSError, subprocess.TimeoutExpired) as err:
        return str(err)
    if proc.returncode == 0 and proc.stdout.strip():
        return None
    detail = (proc.stderr or proc.stdout).strip().splitlines()
    return detail[-1] if detail else f"exit {proc.returncode}"


def lacks_sys_resource(status: str | None = None) -> bool:
    """Whether this process's capability bounding set lacks CAP_SYS_RESOURCE."""
    if status is None:
        status = Path("/proc/self/status").read_text()
    for line in status.splitlines():
        if line.startswith("CapBnd:"):
            return not (int(line.split()[1], 16) >> CAP_SYS_RESOURCE) & 1
    return False


def find(docker: str | None = None, start: bool = True) -> Engine:
    """An engine that answers: the user's own (``DOCKER_HOST`` or the
    default socket), else the tier's private one, started if ``start`` and
    we may; else ``EngineUnavailable`` with what to do."""
    docker = docker or shutil.which("docker")
    if docker is None:
        raise EngineUnavailable("no docker CLI: install Docker (Docker Desktop, docker-ce, or Debian's docker.io)")
    user_problem = answers(docker, None, timeout=10)
    if user_problem is None:
        return Engine(docker, None)
    if SOCKET.exists() and answers(docker, private_host(), timeout=10) is None:
        # Started by an earlier step of this run or a kept run; whoever
        # started it (or `nox -s cluster-clean`) stops it.
        return Engine(docker, private_host())
    if os.environ.get("DOCKER_HOST"):
        raise EngineUnavailable(f"no Docker engine answers at DOCKER_HOST={os.environ['DOCKER_HOST']} "
                                f"({user_problem}): start it, or unset DOCKER_HOST")
    dockerd = shutil.which("dockerd")
    if not start or not can_start_own():
        why = ("dockerd is not installed" if dockerd is None else
               "the tier starts its own dockerd only as root" if os.geteuid() != 0 else "not asked to start one")
        raise EngineUnavailable(f"no Docker engine answers ({user_problem}) and {why}: start Docker "
                                "(`sudo systemctl start docker`, or Docker Desktop) and retry")
    return start_own(docker, dockerd)


def can_start_own() -> bool:
    """Whether the tier may start its own dockerd here: none answers at an
    explicit DOCKER_HOST (then that one is wanted), dockerd is installed,
    and we are root."""
    return not os.environ.get("DOCKER_HOST") and bool(shutil.which("dockerd")) and os.geteuid() == 0


def daemon_config(wrapper: Path | None) -> dict:
    config = {
        "bridge": "none",
        "dns": ["127.0.0.1"],
        "iptables": True,
        "ip6tables": False,
        "log-driver": "json-file",
        "log-opts": {"max-size": "10m", "max-file": "2"},
        "features": {"buildkit": False},
    }
    if wrapper is not None:
        config["runtimes"] = {"gwp-runc": {"path": str(wrapper)}}
        config["default-runtime"] = "gwp-runc"
    return config


WRAPPER_TEXT = '''#!{python}
"""runc, minus CAP_SYS_RESOURCE, which this machine's bounding set lacks
(written by the gitops-whitepaper tier's docker_engine module)."""
import json, os, sys

CAP = "CAP_SYS_RESOURCE"


def strip(path, process_only):
    with open(path) as handle:
        spec = json.load(handle)
    process = spec.get("process", {{}}) if process_only else spec
    for key, caps in (process.get("capabilities") or {{}}).items():
        process["capabilities"][key] = [c for c in caps if c != CAP]
    with open(path, "w") as handle:
        json.dump(spec, handle)


def value(args, *names):
    for i, arg in enumerate(args):
        if arg in names and i + 1 < len(args):
            return args[i + 1]
        for name in names:
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


args = sys.argv[1:]
if "create" in args or "run" in args:
    strip(os.path.join(value(args, "--bundle", "-b") or os.getcwd(), "config.json"), True)
elif "exec" in args and value(args, "--process", "-p"):
    strip(value(args, "--process", "-p"), False)
os.execv({runc!r}, ["runc", *args])
'''


def start_own(docker: str, dockerd: str) -> Engine:
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    wrapper = None
    notes = []
    if lacks_sys_resource():
        runc = shutil.which("runc")
        if runc is None:
            raise EngineUnavailable("this machine's capability bounding set lacks CAP_SYS_RESOURCE and runc is not "
                                    "installed to wrap: install runc (Debian: runc)")
        WRAPPER.write_text(WRAPPER_TEXT.format(python=sys.executable, runc=runc), encoding="utf-8")
        WRAPPER.chmod(0o755)
        wrapper = WRAPPER
        notes.append("the capability bounding set lacks CAP_SYS_RESOURCE: containers run through "
                     f"{WRAPPER}, which drops it from their specs")
    config = RUN_DIR / "daemon.json"
    config.write_text(json.dumps(daemon_config(wrapper), indent=2) + "\n", encoding="utf-8")
    data_root().mkdir(parents=True, exist_ok=True)
    if not FIREWALL_BEFORE.exists():  # kept from a run that died before it could stop its engine
        FIREWALL_BEFORE.write_text(json.dumps(docker_rules()), encoding="utf-8")
    argv = [dockerd, f"--host={private_host()}", f"--data-root={data_root()}", f"--exec-root={EXEC_ROOT}",
            f"--pidfile={PID_FILE}", f"--config-file={config}"]
    with open(LOG, "ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    deadline = time.monotonic() + START_BOUND
    problem = "not started"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EngineUnavailable(f"dockerd exited ({proc.returncode}) at start; its log: {LOG}\n{tail(LOG)}")
        problem = answers(docker, private_host(), timeout=5)
        if problem is None:
            notes.insert(0, f"dockerd started on {SOCKET} (data root {data_root()}, log {LOG})")
            return Engine(docker, private_host(), own=True, notes=notes)
        time.sleep(0.5)
    stop_own()
    raise EngineUnavailable(f"dockerd did not answer within {START_BOUND}s ({problem}); its log: {LOG}\n{tail(LOG)}")


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def own_pid() -> int | None:
    """The PID of the tier's dockerd, if it runs."""
    try:
        pid = int(PID_FILE.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return pid if str(SOCKET).encode() in cmdline else None


def stop_own() -> list[str]:
    """Stop the tier's dockerd (its containers stop with it), then whatever
    it left: containerd shims, and mounts under its data root and run
    folder. Returns what was done."""
    done = []
    pid = own_pid()
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        done.append(f"stopped dockerd {pid}")
        deadline = time.monotonic() + STOP_BOUND
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
            done.append(f"killed dockerd {pid} after {STOP_BOUND}s")
    for left in leftover_processes():
        with contextlib.suppress(OSError):
            os.kill(left, signal.SIGKILL)
        done.append(f"killed {left} ({_comm(left)})")
    for mount in leftover_mounts():
        subprocess.run(["umount", "-l", mount], capture_output=True)
        done.append(f"unmounted {mount}")
    if FIREWALL_BEFORE.exists() and not any(_comm(p) == "dockerd" and _alive(p) for p in _pids()):
        try:
            before = json.loads(FIREWALL_BEFORE.read_text(encoding="utf-8"))
        except ValueError:
            before = None
        if before is not None:
            done += remove_added_rules(before)
        FIREWALL_BEFORE.unlink(missing_ok=True)
    return done


def docker_rules() -> dict[str, list[str]]:
    """Docker's chains and rules in each table, as ``iptables -S`` prints
    them (none where iptables is missing)."""
    out: dict[str, list[str]] = {}
    for table in FIREWALL_TABLES:
        try:
            proc = subprocess.run(["iptables", "-t", table, "-S"], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            proc = None
        out[table] = [line for line in proc.stdout.splitlines() if "DOCKER" in line] \
            if proc is not None and proc.returncode == 0 else []
    return out


def removal_commands(before: dict[str, list[str]], now: dict[str, list[str]]) -> list[list[str]]:
    """The iptables commands that take out what was added since ``before``:
    the added rules (last first), then the added chains, emptied first."""
    commands = []
    for table, lines in now.items():
        kept = set(before.get(table, []))
        added = [line for line in lines if line not in kept]
        rules = [shlex.split(line)[1:] for line in added if line.startswith("-A ")]
        chains = [line.split()[1] for line in added if line.startswith("-N ")]
        commands += [["iptables", "-t", table, "-D", *rule] for rule in reversed(rules)]
        commands += [["iptables", "-t", table, "-F", chain] for chain in chains]
        commands += [["iptables", "-t", table, "-X", chain] for chain in chains]
    return commands


def remove_added_rules(before: dict[str, list[str]]) -> list[str]:
    done = []
    for command in removal_commands(before, docker_rules()):
        if subprocess.run(command, capture_output=True, timeout=30).returncode == 0:
            done.append(" ".join(command[1:]))
    return [f"removed Docker's firewall rules the tier's engine added ({len(done)} commands)"] if done else []


def _pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def leftover_processes() -> list[int]:
    """dockerd, containerd and shims of the tier's engine still running
    (each names its run folder or data root on its command line)."""
    marks = (str(RUN_DIR).encode(), str(data_root()).encode())
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if any(mark in cmdline for mark in marks) and _alive(int(entry.name)):
            out.append(int(entry.name))
    return out


def leftover_mounts(mountinfo: str | None = None) -> list[str]:
    """Mount points under the run folder or data root, deepest first."""
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError:
            return []
    roots = (str(RUN_DIR), str(data_root()))
    points = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 4:
            point = fields[4].replace("\\040", " ")
            if any(point == r or point.startswith(r + "/") for r in roots):
                points.append(point)
    return sorted(set(points), key=lambda p: (-p.count("/"), p))


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m docker_engine", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["start", "stop", "status"])
    args = parser.parse_args(argv)
    if args.action == "start":
        engine = find()
        print(f"DOCKER_HOST={engine.host or '(default)'}" + "".join(f"\n{n}" for n in engine.notes))
    elif args.action == "stop":
        print("\n".join(stop_own()) or "the tier's dockerd is not running")
    else:
        pid = own_pid()
        print(f"the tier's dockerd: {'pid ' + str(pid) if pid else 'not running'}; "
              f"leftover processes {leftover_processes()}, mounts {leftover_mounts()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
