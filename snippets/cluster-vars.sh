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
namespace) on the cluster of CONTEXT, from the environment.

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
  KUBECTL                the kubectl binary to use (default: from PATH)

Refuses, before it changes anything: a CLUSTER name other than lower case,
digits and dashes; a CONTEXT the kubeconfig does not have; a PLATFORM_GIT_URL
that is not http(s):// or ssh://, a PLATFORM_OCI_URL that is not oci://, and
a PLATFORM_OCI_INSECURE other than true or false.
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
YAML
)"

say "cluster variables for $CLUSTER on context $CONTEXT$([[ "$DRY_RUN" == true ]] && echo '; dry run: nothing is changed')"
printf '    %s=%s\n' cluster_name "$CLUSTER" platform_git_url "$PLATFORM_GIT_URL" \
  platform_oci_url "$PLATFORM_OCI_URL" platform_oci_insecure "$INSECURE"
printf '%s <<< (namespace flux-system, configmap flux-system/cluster-vars)\n' \
  "$(show "${KUBECTL:-kubectl}" --context "$CONTEXT" apply --server-side -f -)"
if [[ "$DRY_RUN" == false ]]; then
  "${KUBECTL:-kubectl}" --context "$CONTEXT" apply --server-side -f - <<<"$MANIFEST"
fi
