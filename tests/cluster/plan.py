"""The command sequence of the cluster tier, as data.

Every command the tier runs is a ``Step``. Providers and scenarios build steps
and hand them to a runner (``runner.py``): the live runner executes them, the
recording runner only collects them, and ``render`` prints what was collected.
That is ``--plan``: the same code path as a real run, minus the execution, so
the printed sequence is the one a run performs.

Values only known while running (the kind network's gateway, the ports the
git server and the registry got, the temporary work directory) print as shell
variables, defined at the top of the plan.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

# Placeholders a plan prints for values a live run discovers.
WORK = "$GWP_WORK"  # temporary directory: kubeconfigs, scratch clones
GATEWAY = "$KIND_GATEWAY"  # the kind network's gateway address (host side)
GIT_PORT = "$GIT_PORT"  # the port the git server listens on
REGISTRY_PORT = "$REGISTRY_PORT"  # the host port of the local registry
SSH_PORT = "$SSH_GIT_PORT"  # the port the private fork's sshd listens on

INHERITED_PATH = "$PATH"  # in an env value: the PATH the harness was started with

PLACEHOLDER_NOTES = {
    WORK: "a new temporary directory (mktemp -d); never ~/.kube",
    GATEWAY: "gateway of the docker network `kind` (the docker network inspect step)",
    GIT_PORT: "free port the in-process git server (dulwich) listens on",
    REGISTRY_PORT: "free host port of the local registry (the kind container's published port, or the kwok host process)",
    SSH_PORT: "free port the private fork's sshd (Debian's openssh-server) listens on",
}


@dataclass
class Step:
    """One command. ``context`` names the kube context it changes (the guard
    checks it); ``kubeconfig`` the file that context lives in."""

    argv: list[str]
    note: str = ""
    env: dict[str, str] = field(default_factory=dict)
    stdin: str | None = None
    cwd: str | None = None
    context: str | None = None
    kubeconfig: str | None = None
    timeout: float | None = None
    # In a plan, what this step's output stands for (e.g. GATEWAY).
    placeholder: str | None = None
    # Done inside the test process rather than by a command (the git server).
    in_process: bool = False

    def render(self) -> str:
        """The step as one shell command line (a here-document for stdin)."""
        lines = [f"# {self.note}"] if self.note else []
        if self.in_process:
            lines.append("# (in the test process) " + " ".join(self.argv))
            return "\n".join(lines)
        env = " ".join(f"{k}={_quote(v)}" for k, v in self.env.items())
        cmd = " ".join(_quote(a) for a in self.argv)
        if self.cwd:
            cmd = f"(cd {_quote(self.cwd)} && {env + ' ' if env else ''}{cmd})"
        elif env:
            cmd = f"{env} {cmd}"
        if self.placeholder:
            cmd = f"{self.placeholder[1:]}=$({cmd})"
        if self.stdin is not None:
            cmd += " <<'EOF'\n" + self.stdin.rstrip("\n") + "\nEOF"
        lines.append(cmd)
        return "\n".join(lines)


def _quote(arg: str) -> str:
    """Quote for the shell, but leave placeholders expandable."""
    if any(p in arg for p in (*PLACEHOLDER_NOTES, INHERITED_PATH)):
        return '"' + arg.replace('"', '\\"') + '"'
    return shlex.quote(arg)


def render(steps: list[Step], title: str = "cluster tier") -> str:
    """The whole plan, ready to read (or to paste into a shell after defining
    the variables at the top)."""
    used = [p for p in PLACEHOLDER_NOTES if any(p in s.render() for s in steps)]
    head = [f"# Plan of the {title}: the commands a run executes, in order."]
    head += [f"#   {p[1:]}: {PLACEHOLDER_NOTES[p]}" for p in used]
    return "\n\n".join(["\n".join(head), *(s.render() for s in steps)]) + "\n"
