#!/usr/bin/env bash
# Clone a cluster directory into a sandbox directory.
#
# The copy leaves out flux-system/gotk-sync.yaml: that file ties a cluster to
# its own directory, and `flux bootstrap` writes the sandbox's own one. If the
# source follows the platform on a git branch (development), the copy follows
# BRANCH instead, so the sandbox runs the platform of the branch you work on.
set -euo pipefail

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

die() { printf 'sandbox-clone: %s\n' "$*" >&2; exit 1; }
say() { printf '==> %s\n' "$*"; }
# Print a command so that it can be pasted into a shell.
show() {
  local arg out=""
  for arg in "$@"; do
    if [[ "$arg" =~ ^[A-Za-z0-9_./:=@,+-]+$ ]]; then out+=" $arg"; else out+=" '${arg//\'/\'\\\'\'}'"; fi
  done
  printf '+%s\n' "$out"
}
DRY_RUN=false
# run COMMAND...: print it, and run it unless --dry-run.
run() {
  show "$@"
  if [[ "$DRY_RUN" == false ]]; then "$@"; fi
}
# run_to FILE COMMAND...: the same, with the command's output written to FILE.
run_to() {
  local file="$1"
  shift
  printf '%s > %s\n' "$(show "$@")" "$file"
  if [[ "$DRY_RUN" == false ]]; then "$@" >"$file"; fi
}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BRANCH=""
WITH_SYNC=false
ARGS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --branch) [[ $# -ge 2 ]] || die "--branch needs a value"; BRANCH="$2"; shift 2 ;;
    --root) [[ $# -ge 2 ]] || die "--root needs a value"; ROOT="$2"; shift 2 ;;
    --with-sync) WITH_SYNC=true; shift ;;
    --dry-run) DRY_RUN=true; shift ;;
    -h | --help) usage; exit 0 ;;
    -*) usage >&2; die "unknown option: $1" ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
[[ ${#ARGS[@]} -eq 2 ]] || { usage >&2; die "expected SOURCE and SANDBOX"; }
[[ -z "$BRANCH" || "$BRANCH" =~ ^[A-Za-z0-9._/-]+$ ]] || die "not a branch name this script handles: $BRANCH"
SOURCE="${ARGS[0]}"
SANDBOX="${ARGS[1]}"

[[ "$SANDBOX" =~ ^sandbox-[a-z0-9][a-z0-9-]*$ ]] ||
  die "SANDBOX must look like sandbox-<name> (lower case, digits, dashes): $SANDBOX"
SRC_DIR="$ROOT/clusters/$SOURCE"
DST_DIR="$ROOT/clusters/$SANDBOX"
[[ -f "$SRC_DIR/platform.yaml" ]] || die "no cluster directory at $SRC_DIR (clusters/$SOURCE/platform.yaml is missing)"
[[ ! -e "$DST_DIR" ]] || die "$DST_DIR already exists: pick another sandbox name or remove it"
command -v rsync >/dev/null || die "rsync is not installed"

# How does SOURCE track the platform? A branch (GitRepository) or a release (OCIRepository).
if grep -q '^kind: GitRepository' "$SRC_DIR/platform.yaml"; then
  [[ -n "$BRANCH" ]] || die "clusters/$SOURCE follows a git branch: give the sandbox its branch with --branch"
  [[ "$(grep -c '^ *branch: ' "$SRC_DIR/platform.yaml")" -eq 1 ]] ||
    die "expected exactly one 'branch:' line in clusters/$SOURCE/platform.yaml"
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
