"""Remove what earlier runs left behind, by prefix: kind clusters named
``gwp-*`` and containers named ``gwp-*`` (the registry). ``nox -s
cluster-clean`` runs this; it never touches anything without the prefix.

    python -m cluster.clean [--dry-run]
"""

from __future__ import annotations

import argparse
import subprocess
import sys

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="print what would be removed")
    args = parser.parse_args(argv)
    found = preflight.check()
    docker, kind = found.tools.get("docker"), found.tools.get("kind")
    if not docker or not kind or any(r.startswith("Docker engine") for r in found.reasons):
        print(f"cluster-clean: nothing to clean: {found.skip_reason()}")
        return 0
    run = lambda cmd: subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout  # noqa: E731
    clusters, containers = leftovers(
        run([kind, "get", "clusters"]), run([docker, "ps", "-a", "--format", "{{.Names}}"])
    )
    if not clusters and not containers:
        print(f"cluster-clean: no {names.PREFIX}* clusters or containers left")
        return 0
    status = 0
    for cmd in commands(kind, docker, clusters, containers):
        print("+ " + " ".join(cmd))
        if not args.dry_run:
            status |= subprocess.run(cmd).returncode
    return status


if __name__ == "__main__":
    sys.exit(main())
