"""Mutation tests of the tree-policy rule ``alerting`` beyond the one in
test_manifest_mutations: a sandbox (``clusters/sandbox-*``) on platform
releases needs no Alert, because snippets/sandbox-clone.sh leaves the Alert
of the cluster it copies out; the same directory under a long-lived name
does."""

from __future__ import annotations

import shutil

from harness.checks import tree_policy
from mutations.test_manifest_mutations import (PLATFORM_OCI, assert_fails_at, ctx, edit, failed,  # noqa: F401
                                               needs_kustomize, tree)


def _alerting(findings) -> list[str]:
    return [f for f in failed(findings) if "[alerting]" in f]


@needs_kustomize
def test_a_sandbox_on_platform_releases_alerts_no_channel(tree):
    (tree / "clusters/test/platform.yaml").write_text(PLATFORM_OCI)
    shutil.move(tree / "clusters/test", tree / "clusters/sandbox-perf")
    edit(tree, "clusters/sandbox-perf/flux-system/gotk-sync.yaml", "path: ./clusters/test",
         "path: ./clusters/sandbox-perf")
    assert _alerting(tree_policy.run(ctx(tree))) == []
    shutil.move(tree / "clusters/sandbox-perf", tree / "clusters/perf")
    edit(tree, "clusters/perf/flux-system/gotk-sync.yaml", "path: ./clusters/sandbox-perf", "path: ./clusters/perf")
    assert_fails_at(tree_policy.run(ctx(tree)), "clusters/perf/platform.yaml", 1, "perf follows platform releases")
