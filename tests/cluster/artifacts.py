"""On failure: what a reader needs to debug, in one folder named in the output.

For each cluster the harness created: ``flux get all -A``, the events of every
namespace, the Flux objects as YAML and the logs of every Flux controller.
"""

from __future__ import annotations

import time
from pathlib import Path

from .plan import Step
from .providers import FLUX_NAMESPACE, Cluster, kube_args
from .runner import Recorder

CONTROLLERS = ("source-controller", "kustomize-controller", "helm-controller", "notification-controller")
FLUX_KINDS = "gitrepositories,ocirepositories,helmrepositories,kustomizations,helmreleases"


def folder(root: Path, label: str) -> Path:
    """A new folder under ``artifacts/cluster/`` (ignored by git)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in label)[:80]
    return root / "artifacts" / "cluster" / f"{stamp}-{safe}"


def collect_steps(cluster: Cluster, flux: str, kubectl: str) -> dict[str, Step]:
    """file name -> the read-only command whose output goes into it."""
    kube = kube_args(cluster)
    steps = {
        "flux-get-all.txt": Step([flux, "get", "all", "-A", *kube], timeout=120),
        "events.txt": Step([kubectl, *kube, "get", "events", "-A", "--sort-by=.lastTimestamp"], timeout=120),
        "flux-objects.yaml": Step([kubectl, *kube, "get", FLUX_KINDS, "-A", "-o", "yaml"], timeout=120),
    }
    for controller in CONTROLLERS:
        steps[f"logs-{controller}.txt"] = Step(
            [kubectl, *kube, "logs", "-n", FLUX_NAMESPACE, f"deployment/{controller}", "--tail=-1"], timeout=120
        )
    return steps


def collect(dest: Path, clusters: list[Cluster], runner: Recorder, flux: str, kubectl: str,
            host_logs=lambda cluster: {}) -> Path:
    """Write everything for every cluster under ``dest``; never raises for a
    command that fails (its error output is what gets written). Where the
    controllers run on the host (kwok), ``host_logs(cluster)`` names their
    log files, copied instead of asking the pods."""
    import shutil

    for cluster in clusters:
        where = dest / cluster.target
        where.mkdir(parents=True, exist_ok=True)
        logs = host_logs(cluster)
        for name, path in logs.items():
            try:
                shutil.copyfile(path, where / f"logs-{name}.txt")
            except OSError as err:
                (where / f"logs-{name}.txt").write_text(f"could not copy {path}: {err}")
        for name, step in collect_steps(cluster, flux, kubectl).items():
            if logs and name.startswith("logs-"):
                continue
            try:
                proc = runner.run(step, check=False)
                text = proc.stdout + (f"\n--- stderr ---\n{proc.stderr}" if proc.stderr else "")
            except Exception as err:  # a dead cluster must not hide the others
                text = f"could not run {' '.join(step.argv)}: {err}"
            (where / name).write_text(text)
    return dest
