"""Remove what earlier runs left behind, by prefix: kind clusters named
``gwp-*`` and containers named ``gwp-*`` (the registry); for kwok, the host
processes of a run (control plane, Flux controllers, registry: each names a
``gwp-work-*`` folder in its command line, working directory or KUBECONFIG)
and those temporary folders. ``nox -s cluster-clean`` runs this; it never
touches anything without the prefix.

    python -m cluster.clean [--dry-run]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from . import names, preflight


def leftovers(kind_clusters: str, containers: str) -> tuple[list[str], list[str]]:
    """From ``kind get clusters`` and ``docker ps -a --format {{.Names}}``
    output, the clusters and containers the harness made."""
    clusters = [c for c in kind_clusters.split() if c.startswith(names.PREFIX)]
    boxes = [c for c in containers.split() if c.startswith(names.PREFIX)]
    # kind's node containers belong to the clusters; deleting the cluster removes them.
    boxes = [b for b in boxes if not any(b.startswith(f"{c}-") for c in clusters)]
    return clusters, boxes


def commands(kind: str, docker: str, clusters: list[str], containers: list[str]) -> list[list[str]]:
    cmds = [[kind, "delete", "cluster", f"--name={c}"] for c in clusters]
    if containers:
        cmds.append([docker, "rm", "--force", *containers])
    return cmds


WORK_MARKER = f"{names.PREFIX}work-"


def kwok_leftovers() -> tuple[list[int], list[Path]]:
    """Processes and temporary folders of kwok runs that did not clean up."""
    from . import processes

    folders = sorted(Path(tempfile.gettempdir()).glob(f"{WORK_MARKER}*"))
    return processes.processes_with_marker(WORK_MARKER), folders


def clean_kwok(dry_run: bool) -> int:
    from . import processes

    pids, folders = kwok_leftovers()
    if not pids and not folders:
        print(f"cluster-clean: no kwok processes or {WORK_MARKER}* folders left")
        return 0
    for pid in pids:
        print(f"+ kill {pid}  # {_cmdline(pid)[:120]}")
    for folder in folders:
        print(f"+ rm -rf {folder}")
    if dry_run:
        return 0
    processes.kill_pids(pids)
    left = processes.wait_pids_gone(pids, 15)
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    if left:
        print(f"cluster-clean: still running: {', '.join(map(str, left))}", file=sys.stderr)
        return 1
    return 0


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="print what would be removed")
    args = parser.parse_args(argv)
    kwok_status = clean_kwok(args.dry_run)
    return clean_kind(args.dry_run) | kwok_status


def clean_kind(dry_run: bool) -> int:
    """kind clusters and containers named gwp-*, the tier's network, the
    egress guard's routes and rule, and the tier's own dockerd with whatever
    it left mounted."""
    import docker_engine

    from . import egress
    from .providers.kind import NETWORK

    status = 0
    found = preflight.check(check_engine=False)
    docker, kind = found.tools.get("docker"), found.tools.get("kind")
    engine = None
    if docker:
        try:
            engine = docker_engine.find(docker, start=False)
        except docker_engine.EngineUnavailable as error:
            print(f"cluster-clean: no kind clusters to clean: {error}")
    if engine is not None and kind:
        env = {**os.environ, **engine.env(), "KIND_EXPERIMENTAL_DOCKER_NETWORK": NETWORK}
        run = lambda cmd: subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env).stdout  # noqa: E731
        clusters, containers = leftovers(
            run([kind, "get", "clusters"]), run([docker, "ps", "-a", "--format", "{{.Names}}"])
        )
        cmds = commands(kind, docker, clusters, containers)
        if NETWORK in run([docker, "network", "ls", "--format", "{{.Name}}"]).split():
            cmds.append([docker, "network", "rm", NETWORK])
        if not cmds:
            print(f"cluster-clean: no {names.PREFIX}* clusters, containers or networks left")
        for cmd in cmds:
            print("+ " + " ".join(cmd))
            if not dry_run:
                status |= subprocess.run(cmd, env=env).returncode
    for what in egress.leftovers():
        print(f"+ remove the egress guard's {what}")
    if not dry_run:
        egress.remove_leftovers()
    if docker_engine.own_pid() or docker_engine.leftover_processes() or docker_engine.leftover_mounts() \
            or docker_engine.FIREWALL_BEFORE.exists():
        print(f"+ stop the tier's dockerd ({docker_engine.SOCKET}), unmount what it left, take out the firewall "
              "rules it added")
        if not dry_run:
            for done in docker_engine.stop_own():
                print(f"  {done}")
    return status


if __name__ == "__main__":
    sys.exit(main())
