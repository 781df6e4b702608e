#!/usr/bin/env bash
# Release the platform: tag the commit and push platform/ as a versioned OCI
# artifact. Staging picks up the release by itself if it is inside its semver
# range; production moves to it when its tag is changed in a reviewed commit.
#
# The artifact holds platform/ at the same path as the repository does, so
# the clusters' Kustomizations use ./platform/... whichever source they follow.
set -euo pipefail
# The helpers the scripts share (SC1091: a page quoting this whole script is
# checked without lib.sh beside it).
# shellcheck source-path=SCRIPTDIR source=lib.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<'USAGE'
Usage: platform-release.sh VERSION --registry oci://HOST/PATH [options]

Tag the current commit platform-vVERSION and push platform/ to
REGISTRY:VERSION with `flux push artifact`.

  VERSION              the release, MAJOR.MINOR.PATCH (e.g. 1.4.0)
  --registry URL       the OCI repository of platform releases
                       (the clusters' platform_oci_url)
  --remote NAME        the git remote to push the tag to (default: origin)
  --insecure-registry  the registry is served over plain HTTP (local testing)
  --root DIR           the repository root (default: the root of this
                       script's repository)
  --dry-run            print the commands without running them
  -h, --help           show this help
USAGE
}

REGISTRY=""
REMOTE=origin
INSECURE=()
ARGS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --registry) need_value "$@"; REGISTRY="$2"; shift 2 ;;
    --remote) need_value "$@"; REMOTE="$2"; shift 2 ;;
    --insecure-registry) INSECURE=(--insecure-registry); shift ;;
    --root) need_value "$@"; ROOT="$2"; shift 2 ;;
    *) common_argument "$1"; shift ;;
  esac
done
[[ ${#ARGS[@]} -eq 1 ]] || usage_error "expected one VERSION"
VERSION="${ARGS[0]}"
[[ "$VERSION" =~ ^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$ ]] ||
  die "VERSION must be MAJOR.MINOR.PATCH without a v (the clusters' semver ranges match these tags): $VERSION"
[[ "$REGISTRY" =~ ^oci://[^:]+(:[0-9]+)?/[^:@]+$ ]] ||
  die "--registry must be an OCI repository URL without a tag, e.g. oci://ghcr.io/example-org/gitops-whitepaper/platform"
[[ -d "$ROOT/platform" ]] || die "no platform/ directory in $ROOT"

TAG="platform-v$VERSION"
cd "$ROOT"
git rev-parse --git-dir >/dev/null 2>&1 || die "$ROOT is not a git repository"
# The artifact must be exactly what the tagged commit holds.
[[ -z "$(git status --porcelain -- platform)" ]] ||
  die "platform/ has uncommitted changes: commit them (on main, through review) before releasing"
! git rev-parse -q --verify "refs/tags/$TAG" >/dev/null ||
  die "tag $TAG already exists: releases are immutable, pick the next version"
COMMIT="$(git rev-parse HEAD)"
SOURCE_URL="$(git config --get "remote.$REMOTE.url" || true)"
if [[ -z "$SOURCE_URL" ]]; then
  [[ "$DRY_RUN" == true ]] || die "git remote $REMOTE has no URL (see --remote)"
  SOURCE_URL="<url of remote $REMOTE>"
fi

say "tagging ${COMMIT:0:12} as $TAG"
# --8<-- [start:tag]
run git tag -a "$TAG" -m "platform $VERSION" "$COMMIT"
# --8<-- [end:tag]

say "pushing platform/ to $REGISTRY:$VERSION"
# --ignore-paths replaces flux's default ignore list: ignore everything at the
# top level except platform/, so the artifact holds ./platform/... only.
# --8<-- [start:push]
run flux push artifact "$REGISTRY:$VERSION" \
  --path=. \
  --ignore-paths='/*,!/platform/' \
  --source="$SOURCE_URL" \
  --revision="$TAG@sha1:$COMMIT" \
  "${INSECURE[@]}"
# --8<-- [end:push]

say "pushing tag $TAG to $REMOTE"
run git push "$REMOTE" "refs/tags/$TAG"

cat <<NEXT

Released platform $VERSION. Staging follows it if $VERSION is inside its
semver range (clusters/staging/platform.yaml); to move production, change
ref.tag in clusters/production/platform.yaml to "$VERSION" in a pull request.
NEXT
