"""The helm-values-security rule: a HelmRelease's values keep the workload
settings the tree demands (harness.checks.tree_policy)."""

from __future__ import annotations

from pathlib import Path

import yaml

import yamlload

from harness.checks import tree_policy
from harness.model import Outcome

RELEASE = {
    "apiVersion": "helm.toolkit.fluxcd.io/v2",
    "kind": "HelmRelease",
    "metadata": {"name": "app", "namespace": "app"},
    "spec": {
        "interval": "10m",
        "chartRef": {"kind": "OCIRepository", "name": "app"},
        "values": {
            "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
            "podSecurityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        },
    },
}


def write(root: Path, release: dict) -> None:
    path = root / "apps" / "base" / "app" / "release.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(release, sort_keys=False), encoding="utf-8")


def test_a_release_with_the_settings_passes(tmp_path: Path) -> None:
    write(tmp_path, RELEASE)
    assert tree_policy._helm_values(tmp_path) == []


def test_a_release_that_drops_them_fails_at_its_values(tmp_path: Path) -> None:
    release = yamlload.load(yaml.safe_dump(RELEASE))
    del release["spec"]["values"]["securityContext"]
    release["spec"]["values"]["resources"]["requests"].pop("memory")
    write(tmp_path, release)
    [finding] = tree_policy._helm_values(tmp_path)
    assert finding.outcome is Outcome.FAILED
    assert str(finding.where).startswith("apps/base/app/release.yaml:")
    for missing in ("resources.requests with cpu and memory", "allowPrivilegeEscalation: false",
                    "capabilities.drop: [ALL]"):
        assert missing in finding.message
    assert "runAsNonRoot" not in finding.message
