"""Names the cluster tier gives to what it creates. Everything starts with
``PREFIX`` so it never collides with a reader's own clusters or containers, and
``nox -s cluster-clean`` can find leftovers by that prefix alone."""

from __future__ import annotations

import os

PREFIX = "gwp-"
# A second run beside a first (the interrupt test's child) names its clusters
# and registry with this after the prefix, so the two never touch each other's.
INFIX = os.environ.get("GWP_RUN_INFIX", "")

# The clusters the tree describes, each made from create/<name>.yaml.
LONG_LIVED = ("development", "staging", "production")
SANDBOX = "sandbox"
ALL_CLUSTERS = (*LONG_LIVED, SANDBOX)
# Clusters a proof makes for itself and deletes when it has passed: one
# bootstrapped over SSH from a private fork (scenarios/private_fork.py), one
# whose Flux the Flux Operator installs (scenarios/flux_operator.py).
PRIVATE_FORK = "private-fork"
OPERATOR = "operator"
PROOF_CLUSTERS = (PRIVATE_FORK, OPERATOR)
# The create/<name>.yaml a proof's cluster is made from: that of the cluster
# directory it bootstraps.
CONFIG_OF = {PRIVATE_FORK: "development", OPERATOR: "staging"}

REGISTRY_CONTAINER = f"{PREFIX}{INFIX}registry"
REGISTRY_PORT_IN_NETWORK = 5000
GIT_REPO_PATH = "/gitops-whitepaper.git"
DEFAULT_BRANCH = "main"
# The password the harness's git server is given by flux bootstrap (token auth
# over plain HTTP); the server accepts any, and page blocks get it as GIT_PASSWORD.
GIT_PASSWORD = "docs-test"


def cluster_name(target: str) -> str:
    """The kind cluster name for a cluster of the tree: ``gwp-staging``."""
    return f"{PREFIX}{INFIX}{target}"


def kube_context(target: str) -> str:
    """The kubeconfig context kind writes for that cluster."""
    return f"kind-{cluster_name(target)}"


def is_ours(name: str) -> bool:
    """True for a kind cluster or container the harness made."""
    return name.startswith(PREFIX) or name.startswith(f"kind-{PREFIX}")
