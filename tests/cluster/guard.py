"""The context guard: the harness changes only clusters it created.

Before any command that changes a cluster, the runner asks the guard. The
guard refuses when

- the command names a context (``--context``) the harness did not create,
- the kubeconfig it would use is not one the harness wrote (the reader's
  ``~/.kube/config`` in particular, or whatever ``$KUBECONFIG`` points at),
- or, on a live run, that kubeconfig's current context is not the one the
  step targets (someone switched it under us).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


class RefusedContext(RuntimeError):
    """A command would have touched a cluster the harness did not create."""


def _flag_values(argv: list[str], flag: str) -> list[str]:
    """Values of ``--flag=value`` and ``--flag value`` in argv."""
    values = []
    for i, arg in enumerate(argv):
        if arg.startswith(flag + "="):
            values.append(arg.split("=", 1)[1])
        elif arg == flag and i + 1 < len(argv):
            values.append(argv[i + 1])
    return values


class ContextGuard:
    """Knows the contexts and kubeconfig files the harness created."""

    def __init__(self) -> None:
        self._contexts: dict[str, str] = {}  # context -> kubeconfig path

    def register(self, context: str, kubeconfig: str) -> None:
        """Called by a provider right after it created a cluster."""
        home_config = Path.home() / ".kube"
        if str(kubeconfig).startswith(str(home_config)):
            raise RefusedContext(
                f"kubeconfig {kubeconfig} is under {home_config}: the harness writes its "
                "kubeconfigs to a temporary directory only"
            )
        self._contexts[context] = str(kubeconfig)

    def forget(self, context: str) -> None:
        self._contexts.pop(context, None)

    @property
    def contexts(self) -> dict[str, str]:
        return dict(self._contexts)

    def check_argv(self, argv: list[str], context: str, kubeconfig: str | None) -> None:
        """Refuse a command aimed at ``context`` unless every context and
        kubeconfig it names is the harness's own."""
        if context not in self._contexts:
            raise RefusedContext(
                f"refusing `{' '.join(argv[:3])} ...`: context {context!r} was not created by "
                f"the harness (it created: {', '.join(sorted(self._contexts)) or 'none'})"
            )
        ours = self._contexts[context]
        for named in _flag_values(argv, "--context"):
            if named != context:
                raise RefusedContext(
                    f"refusing `{' '.join(argv[:3])} ...`: it names --context={named}, "
                    f"the step targets {context}"
                )
        named_configs = _flag_values(argv, "--kubeconfig")
        for path in [*named_configs, *([kubeconfig] if kubeconfig else [])]:
            if os.path.realpath(path) != os.path.realpath(ours):
                raise RefusedContext(
                    f"refusing `{' '.join(argv[:3])} ...`: kubeconfig {path} is not the "
                    f"harness's file for {context} ({ours})"
                )
        if not named_configs and not kubeconfig:
            raise RefusedContext(
                f"refusing `{' '.join(argv[:3])} ...`: no kubeconfig given, it would fall back "
                "to $KUBECONFIG or ~/.kube/config"
            )

    def check_live(self, kubectl: str, context: str) -> None:
        """Ask kubectl which context the harness's kubeconfig selects now."""
        kubeconfig = self._contexts.get(context)
        if kubeconfig is None:
            raise RefusedContext(f"context {context!r} was not created by the harness")
        proc = subprocess.run(
            [kubectl, "config", "current-context", f"--kubeconfig={kubeconfig}"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        current = proc.stdout.strip()
        if proc.returncode != 0 or current != context:
            raise RefusedContext(
                f"refusing to touch {context}: {kubeconfig} selects "
                f"{current or proc.stderr.strip() or 'no context'}; it was switched outside the "
                "harness. Delete the gwp- clusters (`nox -s cluster-clean`) and rerun"
            )
