#!/usr/bin/env bash
# Clone a cluster directory into a sandbox directory.
#
# The copy gets its own flux-system/gotk-sync.yaml: the source's file ties the
# source cluster to its own directory and branch, so the sandbox's one is
# written for the sandbox's directory and branch instead, and the new
# directory builds and reconciles at once (`flux bootstrap` of the sandbox
# rewrites it the same way). If the source follows the platform on a git
# branch (development), the copy follows BRANCH instead, so the sandbox runs
# the platform of the branch you work on. A sandbox reports to no chat
# channel: the copy leaves out alerts.yaml (staging's and production's Alert
# and Provider), so that its failures never reach their channels.
set -euo pipefail
# The helpers the scripts share (SC1091: a page quoting this whole script is
# checked without lib.sh beside it).
# shellcheck source-path=SCRIPTDIR source=lib.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<'USAGE'
Usage: sandbox-clone.sh SOURCE SANDBOX [--branch BRANCH] [--root DIR] [--dry-run]

Copy clusters/SOURCE to clusters/SANDBOX and write the sandbox's own
flux-system/gotk-sync.yaml (its directory, its branch).

  SOURCE           the cluster to clone: development, staging or production
  SANDBOX          the new cluster directory; must start with "sandbox-"
  --branch BRANCH  the branch clusters/SANDBOX is committed to (default: the
                   branch checked out in the repository). The sandbox's
                   gotk-sync.yaml follows it; so does its platform source when
                   SOURCE follows a branch (development), which is why it must
                   then differ from SOURCE's branch. A sandbox of a cluster
                   that follows platform releases (OCI) runs SOURCE's release,
                   without SOURCE's alerts.yaml: a sandbox alerts no channel.
  --root DIR       the repository root (default: the root of this script's
                   repository)
  --dry-run        print the commands without running them
  -h, --help       show this help

Refuses, before it changes anything: a SANDBOX not named sandbox-<name>; a
SOURCE without clusters/SOURCE/platform.yaml and its gotk-sync.yaml; a
clusters/SANDBOX that exists already; no --branch while no branch is checked
out; and, when SOURCE follows a branch, that same branch as BRANCH (the
sandbox must follow your work branch, not development's).
USAGE
}

BRANCH=""
ARGS=()
branch_and_root_arguments "$@"
[[ ${#ARGS[@]} -eq 2 ]] || usage_error "expected SOURCE and SANDBOX"
SOURCE="${ARGS[0]}"
SANDBOX="${ARGS[1]}"

check_sandbox_name "$SANDBOX"
SRC_DIR="$ROOT/clusters/$SOURCE"
DST_DIR="$ROOT/clusters/$SANDBOX"
SYNC="flux-system/gotk-sync.yaml"
[[ -f "$SRC_DIR/platform.yaml" ]] || die "no cluster directory at $SRC_DIR (clusters/$SOURCE/platform.yaml is missing)"
[[ -f "$SRC_DIR/$SYNC" ]] || die "no clusters/$SOURCE/$SYNC to write the sandbox's from"
[[ ! -e "$DST_DIR" ]] || die "$DST_DIR already exists: pick another sandbox name or remove it"

if [[ -z "$BRANCH" ]]; then
  BRANCH="$(git -C "$ROOT" symbolic-ref --quiet --short HEAD 2>/dev/null || true)"
  [[ -n "$BRANCH" ]] || die "no branch is checked out in $ROOT: give the branch clusters/$SANDBOX is committed to with --branch"
fi
check_branch_name "$BRANCH"

# How does SOURCE track the platform? A branch (GitRepository) or a release (OCIRepository).
if follows_a_branch "$SRC_DIR" "$SOURCE"; then
  SOURCE_BRANCH="$(sed -n 's/^ *branch: *//p' "$SRC_DIR/platform.yaml")"
  [[ "$BRANCH" != "$SOURCE_BRANCH" ]] ||
    die "clusters/$SOURCE follows branch $SOURCE_BRANCH already: a sandbox of it follows your work branch (git switch --create <branch>, or --branch <branch>)"
  PLATFORM_BRANCH="$BRANCH"
else
  PLATFORM_BRANCH=""
fi

say "copying clusters/$SOURCE to clusters/$SANDBOX (its gotk-sync.yaml is written anew below)"
# --8<-- [start:copy]
run cp -pR "$SRC_DIR" "$DST_DIR"
# --8<-- [end:copy]

if [[ -f "$SRC_DIR/alerts.yaml" ]]; then
  say "clusters/$SANDBOX alerts no channel: leaving out alerts.yaml"
  # --8<-- [start:alerts]
  run rm "$DST_DIR/alerts.yaml"
  run sed -i '/^  - alerts\.yaml$/d' "$DST_DIR/kustomization.yaml"
  # --8<-- [end:alerts]
fi

say "the apps on clusters/$SANDBOX call their cluster $SANDBOX"
run sed -i "s/\${cluster_name:=$SOURCE}/\${cluster_name:=$SANDBOX}/" "$DST_DIR/apps.yaml"

if [[ -n "$PLATFORM_BRANCH" ]]; then
  say "the platform source of clusters/$SANDBOX follows branch $PLATFORM_BRANCH"
  # --8<-- [start:branch]
  run sed -i "s|^\( *branch: \).*|\1$PLATFORM_BRANCH|" "$DST_DIR/platform.yaml"
  # --8<-- [end:branch]
fi

say "writing clusters/$SANDBOX/$SYNC: branch $BRANCH, path ./clusters/$SANDBOX"
# --8<-- [start:sync]
run_to "$DST_DIR/$SYNC" \
  sed -e "s|^\( *branch: \).*|\1$BRANCH|" -e "s|\./clusters/$SOURCE\b|./clusters/$SANDBOX|g" \
  "$SRC_DIR/$SYNC"
# --8<-- [end:sync]
if [[ "$DRY_RUN" == false ]]; then
  grep -q "^ *path: \./clusters/$SANDBOX\$" "$DST_DIR/$SYNC" ||
    die "clusters/$SANDBOX/$SYNC has no 'path: ./clusters/$SANDBOX' (clusters/$SOURCE/$SYNC should reconcile ./clusters/$SOURCE): fix it by hand"
fi

cat <<NEXT

Next:
  1. commit clusters/$SANDBOX to $BRANCH and push it;
  2. create the sandbox cluster (for example: kind create cluster --config create/sandbox.yaml);
  3. bootstrap it against the new directory:
       flux bootstrap <provider> ... --branch=$BRANCH --path=clusters/$SANDBOX
  4. when you are done: snippets/sandbox-clean-down.sh, then snippets/sandbox-return.sh.
NEXT
