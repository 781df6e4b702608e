"""snippets/cluster-vars.sh without a cluster: the ConfigMap it applies, and
what it refuses. kubectl is replaced by ``$KUBECTL``, a script that lists the
contexts given and records what ``apply`` receives. (Whether the variables it
writes are the ones the tree uses is the ``cluster-vars`` check's business.)"""

from __future__ import annotations

import base64

import os
import subprocess
from pathlib import Path

import pytest
import yamlload

from harness.model import PROJECT_ROOT
from test_snippet_scripts import tool

SCRIPT = "snippets/cluster-vars.sh"
CONTEXT = "kind-staging"
GIT_URL = "http://git.example.test/gitops-whitepaper.git"
OCI_URL = "oci://registry.example.test:5000/platform"

FAKE_KUBECTL = """#!/usr/bin/env bash
case "$*" in
  "config get-contexts -o name") printf '%s\\n' $CONTEXTS ;;
  "--context $EXPECT_CONTEXT apply --server-side -f -") cat > "$APPLIED" ;;
  *) echo "unexpected kubectl call: $*" >&2; exit 3 ;;
esac
"""


def cluster_vars(tmp: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    base = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp),
        "KUBECTL": tool(tmp, "kubectl", FAKE_KUBECTL),
        "CONTEXTS": CONTEXT,
        "EXPECT_CONTEXT": CONTEXT,
        "APPLIED": str(tmp / "applied.yaml"),
        "PLATFORM_GIT_URL": GIT_URL,
        "PLATFORM_OCI_URL": OCI_URL,
    }
    return subprocess.run(["bash", SCRIPT, *args], cwd=PROJECT_ROOT, env={**base, **env},
                          capture_output=True, text=True, timeout=60)


def test_applies_the_namespace_and_the_configmap(tmp_path: Path) -> None:
    proc = cluster_vars(tmp_path, "staging", "--context", CONTEXT, PLATFORM_OCI_INSECURE="true")
    assert proc.returncode == 0, proc.stderr
    namespace, configmap = yamlload.load_all((tmp_path / "applied.yaml").read_text(encoding="utf-8"))
    assert namespace == {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "flux-system"}}
    assert configmap["metadata"] == {"name": "cluster-vars", "namespace": "flux-system"}
    assert configmap["data"] == {"cluster_name": "staging", "platform_git_url": GIT_URL,
                                 "platform_oci_url": OCI_URL, "platform_oci_insecure": "true",
                                 "oci_mirror_quay_io": "oci://quay.io", "oci_mirror_ghcr_io": "oci://ghcr.io",
                                 "oci_mirror_insecure": "false"}


def test_chart_mirrors_default_to_the_upstream_registries(tmp_path: Path) -> None:
    proc = cluster_vars(tmp_path, "staging", "--context", CONTEXT, OCI_MIRROR_QUAY_IO="oci://mirror.example.test:5000",
                        OCI_MIRROR_INSECURE="true")
    assert proc.returncode == 0, proc.stderr
    data = list(yamlload.load_all((tmp_path / "applied.yaml").read_text(encoding="utf-8")))[1]["data"]
    assert data["oci_mirror_quay_io"] == "oci://mirror.example.test:5000"
    assert data["oci_mirror_insecure"] == "true"
    assert data["oci_mirror_ghcr_io"] == "oci://ghcr.io"


@pytest.mark.parametrize(("env", "message"), [
    ({"OCI_MIRROR_GHCR_IO": "oci://mirror.example.test/charts"}, "must be oci://HOST[:PORT], without a path"),
    ({"OCI_MIRROR_INSECURE": "yes"}, "OCI_MIRROR_INSECURE must be true or false"),
])
def test_bad_mirrors_are_refused(tmp_path: Path, env: dict[str, str], message: str) -> None:
    proc = cluster_vars(tmp_path, "staging", "--context", CONTEXT, **env)
    assert proc.returncode != 0 and message in proc.stderr
    assert not (tmp_path / "applied.yaml").exists()


def test_the_variables_are_the_ones_the_tree_uses(tmp_path: Path) -> None:
    proc = cluster_vars(tmp_path, "staging", "--context", CONTEXT, OCI_MIRROR_QUAY_IO="oci://m.test",
                        OCI_MIRROR_GHCR_IO="oci://m.test", OCI_MIRROR_INSECURE="false")
    assert proc.returncode == 0, proc.stderr
    configmap = list(yamlload.load_all((tmp_path / "applied.yaml").read_text(encoding="utf-8")))[1]
    tree = "\n".join(p.read_text(encoding="utf-8") for p in (PROJECT_ROOT / "clusters").rglob("*.yaml"))
    for name in configmap["data"]:
        assert "${" + name + ":=" in tree, f"clusters/ never uses the variable {name} that {SCRIPT} sets"


PUBLIC_KEY = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEthrowawaytestkeyonly\n-----END PUBLIC KEY-----\n"


def test_the_release_key_becomes_the_secret_the_platform_source_verifies_with(tmp_path: Path) -> None:
    key = tmp_path / "cosign.pub"
    key.write_text(PUBLIC_KEY, encoding="utf-8")
    proc = cluster_vars(tmp_path, "staging", "--context", CONTEXT, PLATFORM_RELEASE_KEY=str(key))
    assert proc.returncode == 0, proc.stderr
    secret = list(yamlload.load_all((tmp_path / "applied.yaml").read_text(encoding="utf-8")))[2]
    assert secret["kind"] == "Secret" and secret["metadata"] == {"name": "platform-release-key",
                                                                 "namespace": "flux-system"}
    assert base64.b64decode(secret["data"]["cosign.pub"]).decode() == PUBLIC_KEY
    platform = (PROJECT_ROOT / "clusters/staging/platform.yaml").read_text(encoding="utf-8")
    assert "name: platform-release-key" in platform, "clusters/staging/platform.yaml verifies with another Secret"


def test_the_slack_bot_token_becomes_the_secret_the_alerts_provider_reads(tmp_path: Path) -> None:
    token = "xoxb-0000-throwaway"
    proc = cluster_vars(tmp_path, "production", "--context", CONTEXT, SLACK_BOT_TOKEN=token)
    assert proc.returncode == 0, proc.stderr
    secret = list(yamlload.load_all((tmp_path / "applied.yaml").read_text(encoding="utf-8")))[2]
    assert secret["kind"] == "Secret" and secret["metadata"] == {"name": "alerts-slack", "namespace": "flux-system"}
    assert base64.b64decode(secret["data"]["token"]).decode() == token
    assert token not in proc.stdout + proc.stderr, "the bot token is a credential: never printed"
    assert "secret flux-system/alerts-slack" in proc.stdout
    for cluster in ("staging", "production"):
        provider = (PROJECT_ROOT / f"clusters/{cluster}/alerts.yaml").read_text(encoding="utf-8")
        assert "name: alerts-slack" in provider, f"clusters/{cluster}/alerts.yaml reads another Secret"
        assert "address: https://slack.com/api/chat.postMessage" in provider, (
            f"clusters/{cluster}/alerts.yaml: a bot token is used with the chat.postMessage API")


def test_refuses_a_slack_token_that_is_not_a_bot_token(tmp_path: Path) -> None:
    proc = cluster_vars(tmp_path, "staging", "--context", CONTEXT,
                        SLACK_BOT_TOKEN="https://hooks.example.test/services/secret-part")
    assert proc.returncode == 1 and "SLACK_BOT_TOKEN must be a Slack bot token" in proc.stderr
    assert "secret-part" not in proc.stderr, "the value is a credential: never printed"
    assert not (tmp_path / "applied.yaml").exists()


def test_refuses_a_private_key_as_the_release_key(tmp_path: Path) -> None:
    key = tmp_path / "cosign.key"
    key.write_text("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n", encoding="utf-8")
    proc = cluster_vars(tmp_path, "staging", "--context", CONTEXT, PLATFORM_RELEASE_KEY=str(key))
    assert proc.returncode == 1 and "is not a public key" in proc.stderr
    assert not (tmp_path / "applied.yaml").exists()


def test_dry_run_applies_nothing(tmp_path: Path) -> None:
    proc = cluster_vars(tmp_path, "staging", "--context", CONTEXT, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "applied.yaml").exists()
    assert f"platform_git_url={GIT_URL}" in proc.stdout


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["staging", "--context", "kind-other"], {}, "no context 'kind-other'"),
        (["staging"], {}, "--context is required"),
        (["Staging", "--context", CONTEXT], {}, "CLUSTER must be lower case"),
        (["staging", "--context", CONTEXT], {"PLATFORM_GIT_URL": ""}, "export PLATFORM_GIT_URL"),
        (["staging", "--context", CONTEXT], {"PLATFORM_OCI_URL": "https://not-oci"}, "must be an oci:// URL"),
        (["staging", "--context", CONTEXT], {"PLATFORM_GIT_URL": 'https://x/"y'}, "must be an http(s):// or ssh://"),
        (["staging", "--context", CONTEXT], {"PLATFORM_OCI_INSECURE": "yes"}, "must be true or false"),
    ],
)
def test_refusals(tmp_path: Path, args: list[str], env: dict[str, str], message: str) -> None:
    proc = cluster_vars(tmp_path, *args, **env)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert not (tmp_path / "applied.yaml").exists()
