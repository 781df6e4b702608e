"""Manifests: every YAML parses, every object validates strictly, every
kustomization builds, Flux's graph and substitutions hold, every reference
names an object the cluster will have, and the tree follows the project's
rules (harness.checks.*)."""

import pytest

from harness.checks import (api_server, applied_twice, cluster_vars, flux_refs, kustomize_build, kustomize_patches,
                            references, schemas, substitution, tree_policy, version_claims, version_ranges,
                            yaml_parse)
from harness.report import fail_on

# One worker runs them all: they share what Flux applies on each cluster
# (flux_render, and the charts and bootstrap the references check adds) and
# the parsed tree, which a second worker would work out again.
pytestmark = pytest.mark.xdist_group("tree")

CHECKS = {
    "yaml-parse": yaml_parse,
    "schema": schemas,
    "kustomize-build": kustomize_build,
    "patch-target": kustomize_patches,
    "substitution": substitution,
    "flux-refs": flux_refs,
    "references": references,
    "applied-twice": applied_twice,
    "cluster-vars": cluster_vars,
    "semver": version_ranges,
    "version-claims": version_claims,
    "tree-policy": tree_policy,
    # Last: the slowest when its answers are not cached (a real API server).
    "api-server": api_server,
}


@pytest.mark.parametrize("name", list(CHECKS))
def test_manifests(name, context, report):
    fail_on(report.add(CHECKS[name].run(context)))
