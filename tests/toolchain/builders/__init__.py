"""One builder per kind of recipe (versions.yaml ``tools.<name>.build``).

Every builder is a function ``build(tool, b)`` of a ``recipes.Tool`` and a
``recipes.Build`` (scratch ``out`` folder whose ``bin/`` receives the
results, a ``work`` folder, the log, the tools it needs); it returns what to
record about the build. None of them edits the module cache or the
project's tree, and none imports ``install`` or ``pins``: what a builder
needs is handed to it.

- ``go-install``: ``go install PACKAGE@VERSION``.
- ``go-wrapper``: modules whose go.mod replaces its own submodules with
  local directories (k8s.io/kubernetes, the etcd server).
- ``flux-controller``: a writable copy of the controller's module, with its
  ``api`` submodule fetched into ``./api``.
- ``flux-cli``: flux2 with its embedded install manifests generated first.
- ``flux-operator``: the Flux Operator as its release builds it, with its
  Flux manifests and install.yaml beside the binary.
- ``debian-rootfs``: root file systems from Debian packages (debootstrap),
  the bases of the kind tier's images.
- ``kind-node``: the kind tier's node image, with every image kubeadm and
  kind start side-loaded.
- ``kind-images``: the images the clusters' workloads run.
"""

from __future__ import annotations

import importlib

from ..gomod import BuildError
from ..recipes import Tool

BUILDERS = {
    "go-install": "go_install",
    "go-wrapper": "go_wrapper",
    "flux-controller": "flux_controller",
    "flux-cli": "flux_cli",
    "flux-operator": "flux_operator",
    "debian-rootfs": "debian_rootfs",
    "kind-node": "kind_node",
    "kind-images": "kind_images",
}


def builder(tool: Tool):
    """The ``build`` function of the tool's recipe kind."""
    try:
        module = BUILDERS[tool.build]
    except KeyError:
        raise BuildError(f"versions.yaml tools.{tool.name}.build: unknown recipe {tool.build!r}; "
                         f"known: {', '.join(BUILDERS)}") from None
    return importlib.import_module(f"{__name__}.{module}").build
