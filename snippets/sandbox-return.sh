#!/usr/bin/env bash
# Return a sandbox's changes to the cluster directory it was cloned from, and
# remove the sandbox directory.
#
# The copy leaves out flux-system/gotk-sync.yaml and
# flux-system/gotk-components.yaml: the target's own files must stay, or the
# target cluster would reconcile the sandbox's directory and branch, and run
# the Flux version the sandbox was bootstrapped with. The target also keeps
# its alerts.yaml, which the clone left out of the sandbox. And the target keeps
# tracking its own branch and name: the sandbox followed its work branch, which
# must not reach development when the work is merged. The script refuses a
# sandbox that was not cloned from TARGET: its apps must come from
# ./apps/TARGET and its platform source must be of TARGET's kind.
set -euo pipefail
# The helpers the scripts share (SC1091: a page quoting this whole script is
# checked without lib.sh beside it).
# shellcheck source-path=SCRIPTDIR source=lib.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<'USAGE'
Usage: sandbox-return.sh SANDBOX TARGET [--branch BRANCH] [--root DIR] [--dry-run]

Copy clusters/SANDBOX back over clusters/TARGET (without the flux-system files
gotk-sync.yaml and gotk-components.yaml), keep TARGET on its own platform
branch and its own alerts.yaml (which sandbox-clone.sh leaves out), and remove
clusters/SANDBOX. Refuses a sandbox not cloned from TARGET.

  SANDBOX          the sandbox directory, e.g. sandbox-a
  TARGET           the cluster it was cloned from, e.g. development
  --branch BRANCH  the branch TARGET's platform source follows (default: the
                   branch it follows now, read from clusters/TARGET)
  --root DIR       the repository to work in (default: the one this script
                   is part of)
  --dry-run        print the commands, change nothing
  -h, --help       show this help

Refuses, before it changes anything: a TARGET that is itself a sandbox; a
SANDBOX or TARGET without its platform.yaml; and a sandbox that was not
cloned from TARGET: its apps must come from ./apps/TARGET and its platform
source must be of TARGET's kind (GitRepository or OCIRepository). --branch
is refused for a TARGET that follows platform releases.
USAGE
}

BRANCH=""
ARGS=()
branch_and_root_arguments "$@"
[[ ${#ARGS[@]} -eq 2 ]] || usage_error "expected SANDBOX and TARGET"
SANDBOX="${ARGS[0]}"
TARGET="${ARGS[1]}"
check_branch_name "$BRANCH"

check_sandbox_name "$SANDBOX"
[[ "$TARGET" != sandbox-* ]] || die "TARGET is another sandbox ($TARGET): return to the long-lived cluster it came from"
SRC_DIR="$ROOT/clusters/$SANDBOX"
DST_DIR="$ROOT/clusters/$TARGET"
[[ -f "$SRC_DIR/platform.yaml" ]] || die "no sandbox directory at $SRC_DIR (clusters/$SANDBOX/platform.yaml is missing)"
[[ -f "$DST_DIR/platform.yaml" ]] || die "no cluster directory at $DST_DIR (clusters/$TARGET/platform.yaml is missing)"

# Was the sandbox cloned from TARGET? Its apps come from TARGET's apps
# directory, and its platform source is of the same kind (a branch or releases).
apps_path() { sed -n 's|^ *path: *\(\./apps/.*\)$|\1|p' "$1/apps.yaml" | sort -u; }
source_kind() { sed -n 's/^kind: \(GitRepository\|OCIRepository\)$/\1/p' "$1/platform.yaml"; }
[[ -n "$(source_kind "$DST_DIR")" ]] || die "clusters/$TARGET/platform.yaml has no GitRepository or OCIRepository"
[[ "$(apps_path "$SRC_DIR")" == "./apps/$TARGET" ]] ||
  die "clusters/$SANDBOX/apps.yaml reconciles '$(apps_path "$SRC_DIR")', not ./apps/$TARGET: it was not cloned from $TARGET; return it to the cluster it came from"
[[ "$(source_kind "$SRC_DIR")" == "$(source_kind "$DST_DIR")" ]] ||
  die "the platform source of clusters/$SANDBOX is a $(source_kind "$SRC_DIR"), that of clusters/$TARGET a $(source_kind "$DST_DIR"): it was not cloned from $TARGET; return it to the cluster it came from"

# The branch TARGET's platform source follows before the copy overwrites it.
if follows_a_branch "$DST_DIR" "$TARGET"; then
  if [[ -z "$BRANCH" ]]; then
    BRANCH="$(sed -n 's/^ *branch: *//p' "$DST_DIR/platform.yaml")"
  fi
elif [[ -n "$BRANCH" ]]; then
  die "clusters/$TARGET follows platform releases (OCIRepository), not a branch: omit --branch"
fi

say "copying clusters/$SANDBOX back to clusters/$TARGET, without gotk-sync.yaml and gotk-components.yaml"
# TARGET's directory becomes the sandbox's, so files the sandbox removed go
# too; TARGET keeps its own gotk-sync.yaml and gotk-components.yaml, and its
# alerts.yaml (a sandbox has none).
# --8<-- [start:copy]
KEEP=(-path "$DST_DIR/flux-system" -o -path "$DST_DIR/flux-system/gotk-sync.yaml"
  -o -path "$DST_DIR/flux-system/gotk-components.yaml" -o -path "$DST_DIR/alerts.yaml")
run find "$DST_DIR" -mindepth 1 -depth ! \( "${KEEP[@]}" \) -delete
ARCHIVE="${TMPDIR:-/tmp}/sandbox-return-$$.tar"
trap 'rm -f "$ARCHIVE"' EXIT
run tar -C "$SRC_DIR" --exclude=./flux-system/gotk-sync.yaml --exclude=./flux-system/gotk-components.yaml \
  -cf "$ARCHIVE" .
run tar -C "$DST_DIR" -xf "$ARCHIVE"
# --8<-- [end:copy]

if [[ -f "$DST_DIR/alerts.yaml" ]] && ! grep -q '^  - alerts\.yaml$' "$DST_DIR/kustomization.yaml"; then
  say "clusters/$TARGET keeps its alerts"
  run sed -i 's/^  - apps\.yaml$/&\n  - alerts.yaml/' "$DST_DIR/kustomization.yaml"
fi

say "the apps on clusters/$TARGET call their cluster $TARGET again"
run sed -i "s/\${cluster_name:=$SANDBOX}/\${cluster_name:=$TARGET}/" "$DST_DIR/apps.yaml"

if [[ -n "$BRANCH" ]]; then
  say "the platform source of clusters/$TARGET keeps following branch $BRANCH"
  # --8<-- [start:branch]
  run sed -i "s|^\( *branch: \).*|\1$BRANCH|" "$DST_DIR/platform.yaml"
  # --8<-- [end:branch]
fi

say "removing clusters/$SANDBOX"
run rm -r "$SRC_DIR"

if [[ "$DRY_RUN" == false ]] && git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
  say "what changed in clusters/$TARGET:"
  git -C "$ROOT" status --short -- "clusters/$TARGET" "clusters/$SANDBOX"
fi
cat <<NEXT

Next: review the change to clusters/$TARGET, commit it with the removal of
clusters/$SANDBOX, and open a pull request to main.
NEXT
