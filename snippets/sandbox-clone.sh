#!/usr/bin/env bash
# Clone a cluster directory into a sandbox directory.
#
# The copy leaves out flux-system/gotk-sync.yaml: that file ties a cluster to
# its own directory, and `flux bootstrap` writes the sandbox's own one. If the
# source follows the platform on a git branch (development), the copy follows
# BRANCH instead, so the sandbox runs the platform of the branch you work on.
set -euo pipefail
# The helpers the scripts share (SC1091: a page quoting this whole script is
# checked without lib.sh beside it).
# shellcheck source-path=SCRIPTDIR source=lib.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<'EOF'
Usage: sandbox-clone.sh SOURCE SANDBOX [--branch BRANCH] [--root DIR] [--with-sync] [--dry-run]

Copy clusters/SOURCE to clusters/SANDBOX without flux-system/gotk-sync.yaml.

  SOURCE           the cluster to clone: development, staging or production
  SANDBOX          the new cluster directory; must start with "sandbox-"
  --branch BRANCH  the git branch the sandbox's platform source follows.
                   Required when SOURCE follows a branch (development); not
                   allowed when SOURCE follows platform releases (OCI), whose
                   sandboxes run the same release as SOURCE.
  --root DIR       the repository root (default: the root of this script's
                   repository)
  --with-sync      also write clusters/SANDBOX/flux-system/gotk-sync.yaml for
                   BRANCH and the sandbox's path, for a cluster set up with
                   `flux install` instead of `flux bootstrap`
  --dry-run        print the commands without running them
  -h, --help       show this help
EOF
}

BRANCH=""
WITH_SYNC=false
ARGS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --branch) need_value "$@"; BRANCH="$2"; shift 2 ;;
    --root) need_value "$@"; ROOT="$2"; shift 2 ;;
    --with-sync) WITH_SYNC=true; shift ;;
    *) common_argument "$1"; shift ;;
  esac
done
[[ ${#ARGS[@]} -eq 2 ]] || usage_error "expected SOURCE and SANDBOX"
check_branch_name "$BRANCH"
SOURCE="${ARGS[0]}"
SANDBOX="${ARGS[1]}"

check_sandbox_name "$SANDBOX"
SRC_DIR="$ROOT/clusters/$SOURCE"
DST_DIR="$ROOT/clusters/$SANDBOX"
[[ -f "$SRC_DIR/platform.yaml" ]] || die "no cluster directory at $SRC_DIR (clusters/$SOURCE/platform.yaml is missing)"
[[ ! -e "$DST_DIR" ]] || die "$DST_DIR already exists: pick another sandbox name or remove it"
command -v rsync >/dev/null || die "rsync is not installed"

# How does SOURCE track the platform? A branch (GitRepository) or a release (OCIRepository).
if follows_a_branch "$SRC_DIR" "$SOURCE"; then
  [[ -n "$BRANCH" ]] || die "clusters/$SOURCE follows a git branch: give the sandbox its branch with --branch"
else
  [[ -z "$BRANCH" ]] || die "clusters/$SOURCE follows platform releases (OCIRepository): a sandbox of it runs the same release, so omit --branch"
fi
if [[ "$WITH_SYNC" == true ]]; then
  [[ -n "$BRANCH" ]] || die "--with-sync needs --branch (the branch the sandbox directory is committed to)"
  [[ -f "$SRC_DIR/flux-system/gotk-sync.yaml" ]] || die "no clusters/$SOURCE/flux-system/gotk-sync.yaml to start from"
fi

say "copying clusters/$SOURCE to clusters/$SANDBOX, without gotk-sync.yaml"
# --8<-- [start:rsync]
run rsync -a --exclude='gotk-sync.yaml' "$SRC_DIR/" "$DST_DIR/"
# --8<-- [end:rsync]

say "the apps on clusters/$SANDBOX call their cluster $SANDBOX"
run sed -i "s/\${cluster_name:=$SOURCE}/\${cluster_name:=$SANDBOX}/" "$DST_DIR/apps.yaml"

if [[ -n "$BRANCH" ]]; then
  say "the platform source of clusters/$SANDBOX follows branch $BRANCH"
  # --8<-- [start:branch]
  run sed -i "s|^\( *branch: \).*|\1$BRANCH|" "$DST_DIR/platform.yaml"
  # --8<-- [end:branch]
fi

if [[ "$WITH_SYNC" == true ]]; then
  say "writing clusters/$SANDBOX/flux-system/gotk-sync.yaml (branch $BRANCH, path ./clusters/$SANDBOX)"
  run_to "$DST_DIR/flux-system/gotk-sync.yaml" \
    sed -e "s|^\( *branch: \).*|\1$BRANCH|" -e "s|\./clusters/$SOURCE\b|./clusters/$SANDBOX|g" \
    "$SRC_DIR/flux-system/gotk-sync.yaml"
fi

cat <<EOF

Next:
  1. commit clusters/$SANDBOX to ${BRANCH:-your branch} and push it;
  2. create the sandbox cluster (for example: kind create cluster --config create/sandbox.yaml);
  3. bootstrap it against the new directory:
       flux bootstrap <provider> ... --branch=${BRANCH:-<branch>} --path=clusters/$SANDBOX
  4. when you are done: snippets/sandbox-clean-down.sh, then snippets/sandbox-return.sh.
EOF
