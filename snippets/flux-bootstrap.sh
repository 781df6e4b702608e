#!/usr/bin/env bash
# Bootstrap Flux on one cluster from a plain git server: install the
# controllers, commit clusters/CLUSTER/flux-system/gotk-sync.yaml to the
# repository, and tie the cluster to that directory.
#
# How Flux authenticates follows from the URL. Given an http(s) URL and no
# --token-auth, `flux bootstrap git` writes an ssh:// URL into the cluster's
# GitRepository and generates a deploy key; with --token-auth the cluster
# reads over the URL given, with the same username and password (a token)
# that pushed the bootstrap commit. An ssh:// URL uses a private key file.
set -euo pipefail
# The helpers the scripts share (SC1091: a page quoting this whole script is
# checked without lib.sh beside it).
# shellcheck source-path=SCRIPTDIR source=lib.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<'USAGE'
Usage: flux-bootstrap.sh CLUSTER --context CONTEXT --url URL [--branch BRANCH] [--dry-run]

Install Flux on the cluster of CONTEXT and tie it to clusters/CLUSTER on
BRANCH of the git repository at URL, with `flux bootstrap git`.

  CLUSTER            the cluster directory: development, staging, production
                     or a sandbox-NAME
  --context CONTEXT  the kubeconfig context of the cluster; it must exist in
                     the kubeconfig, and flux is given it explicitly
  --url URL          the repository: http://... (a local test server only),
                     https://... or ssh://...
  --branch BRANCH    the branch the cluster follows (default: main)
  --dry-run          check the arguments and the context, and print the flux
                     command without running it
  -h, --help         show this help

Environment:
  GIT_PASSWORD          for an http(s) URL (required): a password or token
                        that may push; Flux keeps it in the cluster to read
  GIT_USERNAME          for an http(s) URL: the user (default: git)
  GIT_PRIVATE_KEY_FILE  for an ssh URL (required): a private key that may push
  KUBECTL, FLUX         the kubectl and flux binaries to use (default: from PATH)

Refuses, before it changes anything: a CLUSTER without a directory
clusters/CLUSTER; a CONTEXT the kubeconfig does not have; a URL whose scheme
is not http, https or ssh (write user@host:path as ssh://user@host/path); an
http(s) URL without GIT_PASSWORD, and an ssh URL without a key file in
GIT_PRIVATE_KEY_FILE. The password is never printed.
USAGE
}

CONTEXT=""
URL=""
BRANCH=main
ARGS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --context) need_value "$@"; CONTEXT="$2"; shift 2 ;;
    --url) need_value "$@"; URL="$2"; shift 2 ;;
    --branch) need_value "$@"; BRANCH="$2"; shift 2 ;;
    *) common_argument "$1"; shift ;;
  esac
done
[[ ${#ARGS[@]} -eq 1 ]] || usage_error "expected one CLUSTER"
CLUSTER="${ARGS[0]}"
[[ -n "$CONTEXT" ]] || usage_error "--context is required"
[[ -n "$URL" ]] || usage_error "--url is required and must not be empty"
[[ -n "$BRANCH" ]] || die "--branch must not be empty"
check_branch_name "$BRANCH"
[[ -f "$ROOT/clusters/$CLUSTER/platform.yaml" ]] ||
  die "no cluster directory clusters/$CLUSTER in $ROOT (clusters/$CLUSTER/platform.yaml is missing): bootstrap ties a cluster to a directory that exists"

# The authentication, by the URL's scheme.
AUTH=()
SECRET=false
case "$URL" in
  http://* | https://*)
    [[ -n "${GIT_PASSWORD:-}" ]] ||
      die "GIT_PASSWORD is not set: export a password or token that may push to $URL (and GIT_USERNAME if the user is not 'git')"
    AUTH=(--token-auth --username "${GIT_USERNAME:-git}")
    SECRET=true
    if [[ "$URL" == http://* ]]; then
      AUTH+=(--allow-insecure-http=true)
      HOW="token auth as ${GIT_USERNAME:-git}, over plain HTTP"
    else
      HOW="token auth as ${GIT_USERNAME:-git}"
    fi
    ;;
  ssh://*)
    [[ -n "${GIT_PRIVATE_KEY_FILE:-}" ]] ||
      die "GIT_PRIVATE_KEY_FILE is not set: export the path of a private key that may push to $URL"
    [[ -f "$GIT_PRIVATE_KEY_FILE" ]] || die "GIT_PRIVATE_KEY_FILE names no file: $GIT_PRIVATE_KEY_FILE"
    AUTH=(--private-key-file "$GIT_PRIVATE_KEY_FILE")
    HOW="the SSH key $GIT_PRIVATE_KEY_FILE"
    ;;
  *) die "--url must start with http://, https:// or ssh:// (write user@host:path as ssh://user@host/path): $URL" ;;
esac

require_context "$CONTEXT"

say "bootstrapping Flux on context $CONTEXT: clusters/$CLUSTER on branch $BRANCH of $URL ($HOW)$([[ "$DRY_RUN" == true ]] && echo '; dry run: nothing is changed')"
FLUX_CMD=("${FLUX:-flux}" bootstrap git --context "$CONTEXT" --url "$URL" --branch "$BRANCH"
  --path "clusters/$CLUSTER" "${AUTH[@]}" --silent)
if [[ "$SECRET" == true ]]; then
  # Printed with the variable's name in place of the password.
  # shellcheck disable=SC2016 # the name, not the value, is printed
  printf '%s --password "$GIT_PASSWORD"\n' "$(show "${FLUX_CMD[@]}")"
  if [[ "$DRY_RUN" == false ]]; then "${FLUX_CMD[@]}" --password "$GIT_PASSWORD"; fi
else
  run "${FLUX_CMD[@]}"
fi

if [[ "$DRY_RUN" == true ]]; then
  say "dry run: nothing was changed"
  exit 0
fi
cat <<NEXT

Flux runs on $CONTEXT and follows clusters/$CLUSTER on $BRANCH. Bootstrap has
committed clusters/$CLUSTER/flux-system/ there: run git pull.
NEXT
