#!/usr/bin/env bash
# Give a cluster its cluster variables: the ConfigMap flux-system/cluster-vars
# that the flux-system Kustomization substitutes into everything it applies
# (see clusters/*/flux-system/kustomization.yaml). Whoever creates a cluster
# provides it; without it, every ${var:=default} in the tree takes its default.
set -euo pipefail
# The helpers the scripts share (SC1091: a page quoting this whole script is
# checked without lib.sh beside it).
# shellcheck source-path=SCRIPTDIR source=lib.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<'USAGE'
Usage: cluster-vars.sh CLUSTER --context CONTEXT [--dry-run]

Create or replace the ConfigMap flux-system/cluster-vars (and the flux-system
namespace) on the cluster of CONTEXT, from the environment; with
PLATFORM_RELEASE_KEY, also the Secret flux-system/platform-release-key that
staging and production verify platform releases with, and with
SLACK_BOT_TOKEN the Secret flux-system/alerts-slack their alerts go through.

  CLUSTER            the cluster's name: development, staging, production or a
                     sandbox-NAME (the cluster_name variable)
  --context CONTEXT  the kubeconfig context of the cluster; it must exist in
                     the kubeconfig, and kubectl is given it explicitly
  --dry-run          print what would be applied without applying it
  -h, --help         show this help

Environment:
  PLATFORM_GIT_URL       the git repository holding this tree (required)
  PLATFORM_OCI_URL       the OCI repository of platform releases (required)
  PLATFORM_OCI_INSECURE  true only for a registry served over plain HTTP
                         (default: false)
  OCI_MIRROR_QUAY_IO     where quay.io's charts come from: quay.io itself or
                         a mirror, as oci://HOST[:PORT] (default: oci://quay.io)
  OCI_MIRROR_GHCR_IO     the same for ghcr.io (default: oci://ghcr.io)
  OCI_MIRROR_INSECURE    true only for mirrors served over plain HTTP
                         (default: false)
  PLATFORM_RELEASE_KEY   a cosign public key file (cosign.pub): the key the
                         platform releases are signed with (staging, production)
  SLACK_BOT_TOKEN        the token of the Slack app's bot (xoxb-...) the
                         cluster's Alert posts with (staging, production); a
                         credential, never printed
  KUBECTL                the kubectl binary to use (default: from PATH)

Refuses, before it changes anything: a CLUSTER name other than lower case,
digits and dashes; a CONTEXT the kubeconfig does not have; a PLATFORM_GIT_URL
that is not http(s):// or ssh://, a PLATFORM_OCI_URL that is not oci://, a
PLATFORM_OCI_INSECURE other than true or false, and a SLACK_BOT_TOKEN that
is not a bot token (xoxb-...).
USAGE
}

CONTEXT=""
ARGS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --context) need_value "$@"; CONTEXT="$2"; shift 2 ;;
    *) common_argument "$1"; shift ;;
  esac
done
[[ ${#ARGS[@]} -eq 1 ]] || usage_error "expected one CLUSTER"
CLUSTER="${ARGS[0]}"
[[ -n "$CONTEXT" ]] || usage_error "--context is required"
[[ "$CLUSTER" =~ ^[a-z0-9][a-z0-9-]*$ ]] || die "CLUSTER must be lower case, digits and dashes: $CLUSTER"

: "${PLATFORM_GIT_URL:?export PLATFORM_GIT_URL: the git repository holding this tree}"
: "${PLATFORM_OCI_URL:?export PLATFORM_OCI_URL: the OCI repository of platform releases}"
INSECURE="${PLATFORM_OCI_INSECURE:-false}"
[[ "$PLATFORM_GIT_URL" =~ ^(https?|ssh)://[^\"\\[:space:]]+$ ]] ||
  die "PLATFORM_GIT_URL must be an http(s):// or ssh:// URL: $PLATFORM_GIT_URL"
[[ "$PLATFORM_OCI_URL" =~ ^oci://[^\"\\[:space:]]+$ ]] ||
  die "PLATFORM_OCI_URL must be an oci:// URL: $PLATFORM_OCI_URL"
[[ "$INSECURE" == true || "$INSECURE" == false ]] ||
  die "PLATFORM_OCI_INSECURE must be true or false: $INSECURE"
MIRROR_QUAY="${OCI_MIRROR_QUAY_IO:-oci://quay.io}"
MIRROR_GHCR="${OCI_MIRROR_GHCR_IO:-oci://ghcr.io}"
MIRROR_INSECURE="${OCI_MIRROR_INSECURE:-false}"
for pair in OCI_MIRROR_QUAY_IO:"$MIRROR_QUAY" OCI_MIRROR_GHCR_IO:"$MIRROR_GHCR"; do
  [[ "${pair#*:}" =~ ^oci://[^/\"\\[:space:]]+$ ]] || die "${pair%%:*} must be oci://HOST[:PORT], without a path: ${pair#*:}"
done
[[ "$MIRROR_INSECURE" == true || "$MIRROR_INSECURE" == false ]] ||
  die "OCI_MIRROR_INSECURE must be true or false: $MIRROR_INSECURE"
RELEASE_KEY="${PLATFORM_RELEASE_KEY:-}"
if [[ -n "$RELEASE_KEY" ]]; then
  [[ -f "$RELEASE_KEY" ]] || die "PLATFORM_RELEASE_KEY $RELEASE_KEY: no such file (the cosign.pub of the release key)"
  grep -q -- '-----BEGIN PUBLIC KEY-----' "$RELEASE_KEY" ||
    die "PLATFORM_RELEASE_KEY $RELEASE_KEY is not a public key (cosign.pub, never cosign.key)"
fi

SLACK_TOKEN="${SLACK_BOT_TOKEN:-}"
[[ -z "$SLACK_TOKEN" || "$SLACK_TOKEN" =~ ^xoxb-[A-Za-z0-9-]+$ ]] ||
  die "SLACK_BOT_TOKEN must be a Slack bot token, xoxb-... (its value is not shown: it is a credential)"

require_context "$CONTEXT"

MANIFEST="$(cat <<YAML
apiVersion: v1
kind: Namespace
metadata:
  name: flux-system
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: cluster-vars
  namespace: flux-system
data:
  cluster_name: "$CLUSTER"
  platform_git_url: "$PLATFORM_GIT_URL"
  platform_oci_url: "$PLATFORM_OCI_URL"
  platform_oci_insecure: "$INSECURE"
  oci_mirror_quay_io: "$MIRROR_QUAY"
  oci_mirror_ghcr_io: "$MIRROR_GHCR"
  oci_mirror_insecure: "$MIRROR_INSECURE"
YAML
)"

if [[ -n "$RELEASE_KEY" ]]; then
  # A public key: nothing secret, but Flux reads keys from a Secret.
  MANIFEST+="$(printf '\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: platform-release-key\n  namespace: flux-system\ndata:\n  cosign.pub: %s\n' "$(base64 <"$RELEASE_KEY" | tr -d '\n')")"
fi
if [[ -n "$SLACK_TOKEN" ]]; then
  # The Provider of clusters/<name>/alerts.yaml reads the bot token under the
  # key `token`; it reaches the cluster only, never git or the output.
  MANIFEST+="$(printf '\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: alerts-slack\n  namespace: flux-system\ndata:\n  token: %s\n' "$(printf '%s' "$SLACK_TOKEN" | base64 | tr -d '\n')")"
fi

say "cluster variables for $CLUSTER on context $CONTEXT$([[ "$DRY_RUN" == true ]] && echo '; dry run: nothing is changed')"
printf '    %s=%s\n' cluster_name "$CLUSTER" platform_git_url "$PLATFORM_GIT_URL" \
  platform_oci_url "$PLATFORM_OCI_URL" platform_oci_insecure "$INSECURE" \
  oci_mirror_quay_io "$MIRROR_QUAY" oci_mirror_ghcr_io "$MIRROR_GHCR" oci_mirror_insecure "$MIRROR_INSECURE"
printf '%s <<< (namespace flux-system, configmap flux-system/cluster-vars%s)\n' \
  "$(show "${KUBECTL:-kubectl}" --context "$CONTEXT" apply --server-side -f -)" \
  "$([[ -z "$RELEASE_KEY" ]] || echo ', secret flux-system/platform-release-key')$([[ -z "$SLACK_TOKEN" ]] || echo ', secret flux-system/alerts-slack')"
if [[ "$DRY_RUN" == false ]]; then
  "${KUBECTL:-kubectl}" --context "$CONTEXT" apply --server-side -f - <<<"$MANIFEST"
fi
