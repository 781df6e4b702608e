#!/usr/bin/env bash
# Release the platform: push platform/ as a versioned OCI artifact, sign it
# with cosign, and tag the commit. Staging picks up the release by itself if it
# is inside its semver range; production moves to it when its tag is changed
# in a reviewed commit. Both verify the signature before they apply anything
# (spec.verify of their platform OCIRepository).
#
# The artifact holds platform/ at the same path as the repository does, so
# the clusters' Kustomizations use ./platform/... whichever source they follow.
# It is made from `git archive` of the commit, so it holds exactly what the
# commit holds: no ignored or untracked files.
#
# A release is immutable: the script refuses a version whose tag exists
# locally or on the remote, or that the registry already holds from another
# commit. It pushes and signs the artifact first and tags afterwards, so a
# failed push or signature leaves no tag behind; a run that stopped after the
# push (the registry holds the version from this very commit) is resumed at
# the signature.
set -euo pipefail
# The helpers the scripts share (SC1091: a page quoting this whole script is
# checked without lib.sh beside it).
# shellcheck source-path=SCRIPTDIR source=lib.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<'USAGE'
Usage: platform-release.sh VERSION --registry oci://HOST/PATH [options]

Push platform/ of the current commit to REGISTRY:VERSION with
`flux push artifact`, sign the artifact with cosign, then tag the commit
platform-vVERSION and push the tag. Signing needs the cosign CLI and one of
--sign-key or --keyless.

  VERSION              the release, MAJOR.MINOR.PATCH (e.g. 1.4.0)
  --registry URL       the OCI repository of platform releases
                       (the clusters' platform_oci_url)
  --sign-key KEY       sign with this cosign private key: a file (cosign.key
                       from `cosign generate-key-pair`, its password in
                       COSIGN_PASSWORD) or a KMS key URI (awskms://...);
                       the clusters verify with its public key
  --keyless            sign keyless, with the OIDC identity of the CI job
                       (GitHub Actions: permissions id-token: write); the
                       clusters verify the job's identity instead of a key
  --no-tlog            with --sign-key: do not record the signature in a
                       transparency log, for a network without Sigstore's
                       public services (Flux verifies a key's signatures
                       without the log); PLATFORM_RELEASE_NO_TLOG=true is
                       the same
  --remote NAME        the git remote to push the tag to (default: origin)
  --insecure-registry  the registry is served over plain HTTP (local testing)
  --root DIR           the repository root (default: the root of this
                       script's repository)
  --dry-run            print the commands without running them
  -h, --help           show this help

Environment: FLUX and COSIGN name the flux and cosign binaries to use
(default: flux and cosign from PATH); PLATFORM_OCI_INSECURE=true is
--insecure-registry (as for cluster-vars.sh).

Refuses, before it pushes anything: a VERSION that is not MAJOR.MINOR.PATCH
(a staging range would take a typo for the newest release); a --registry
that is not an oci:// URL without a tag; uncommitted changes in platform/;
a remote without a URL; and a version released before: the tag
platform-vVERSION on another commit here, or on the remote, or
REGISTRY:VERSION pushed from another commit; and, before it signs, a
missing cosign or neither --sign-key nor --keyless. Releases are immutable. A run
that stopped after the push (the registry holds the version from this
commit) carries on at the tag.
USAGE
}

REGISTRY=""
REMOTE=origin
SIGN_KEY=""
KEYLESS=false
NO_TLOG="${PLATFORM_RELEASE_NO_TLOG:-false}"
INSECURE=()
[[ "${PLATFORM_OCI_INSECURE:-false}" != true ]] || INSECURE=(--insecure-registry)
ARGS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --registry) need_value "$@"; REGISTRY="$2"; shift 2 ;;
    --remote) need_value "$@"; REMOTE="$2"; shift 2 ;;
    --sign-key) need_value "$@"; SIGN_KEY="$2"; shift 2 ;;
    --keyless) KEYLESS=true; shift ;;
    --no-tlog) NO_TLOG=true; shift ;;
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
# Every release is signed: staging and production apply only what verifies.
[[ "$NO_TLOG" == true || "$NO_TLOG" == false ]] || die "PLATFORM_RELEASE_NO_TLOG must be true or false: $NO_TLOG"
if [[ -n "$SIGN_KEY" && "$KEYLESS" == true ]]; then
  die "give --sign-key or --keyless, not both"
elif [[ "$KEYLESS" == true && "$NO_TLOG" == true ]]; then
  die "--no-tlog is for --sign-key: a keyless signature is verified through the transparency log"
elif [[ "$SIGN_KEY" =~ ^(awskms|gcpkms|azurekms|hashivault)://.+ ]]; then
  SIGNING=(--key "$SIGN_KEY") # a key that stays in a KMS; cosign signs through it
elif [[ -n "$SIGN_KEY" ]]; then
  [[ -f "$SIGN_KEY" ]] || die "--sign-key $SIGN_KEY: no such file (a cosign private key, from cosign generate-key-pair, or a KMS key URI)"
  SIGN_KEY="$(cd "$(dirname "$SIGN_KEY")" && pwd)/$(basename "$SIGN_KEY")"
  SIGNING=(--key "$SIGN_KEY")
elif [[ "$KEYLESS" == true ]]; then
  SIGNING=()
else
  die "releases are signed: give --sign-key FILE (a cosign private key) or --keyless (in CI)"
fi
cosign=("${COSIGN:-cosign}")
command -v "${cosign[0]}" >/dev/null ||
  die "cosign not found (${cosign[0]}): install the cosign CLI (https://docs.sigstore.dev/cosign/system_config/installation/) or name it in COSIGN"

TAG="platform-v$VERSION"
flux=("${FLUX:-flux}")
cd "$ROOT"
git rev-parse --git-dir >/dev/null 2>&1 || die "$ROOT is not a git repository"
# The release is of a reviewed commit; the working tree must not differ from it.
[[ -z "$(git status --porcelain -- platform)" ]] ||
  die "platform/ has uncommitted changes: commit them (on main, through review) before releasing"
COMMIT="$(git rev-parse HEAD)"
REVISION="$TAG@sha1:$COMMIT"
SOURCE_URL="$(git config --get "remote.$REMOTE.url" || true)"
if [[ -z "$SOURCE_URL" ]]; then
  [[ "$DRY_RUN" == true ]] || die "git remote $REMOTE has no URL (see --remote)"
  SOURCE_URL="<url of remote $REMOTE>"
fi

# Has VERSION been released? Look at the tags here and on the remote (a clone
# that has not fetched lately does not know them), and at the registry.
TAGGED=false
if git rev-parse -q --verify "refs/tags/$TAG" >/dev/null; then
  [[ "$(git rev-parse "refs/tags/$TAG^{commit}")" == "$COMMIT" ]] ||
    die "tag $TAG already exists on another commit: releases are immutable, pick the next version"
  TAGGED=true
fi
if [[ "$SOURCE_URL" != "<url of remote $REMOTE>" ]]; then
  say "looking for tag $TAG on $REMOTE"
  status=0
  git ls-remote --exit-code --tags "$REMOTE" "refs/tags/$TAG" >/dev/null || status=$?
  case "$status" in
    0) die "tag $TAG already exists on $REMOTE: releases are immutable, pick the next version (git fetch --tags shows it)" ;;
    2) ;; # no such tag
    *) die "could not list the tags of $REMOTE (git ls-remote exited $status)" ;;
  esac
fi
say "looking for $VERSION in $REGISTRY"
# Tags are listed with their revision; a registry that has never had a release
# answers NAME_UNKNOWN (the OCI distribution spec's code for an unknown repository).
PUSHED=false
if LISTING="$("${flux[@]}" list artifacts "$REGISTRY" --filter-regex "^${VERSION//./\\.}\$" "${INSECURE[@]}" 2>&1)"; then
  HELD="$(awk -v artifact="${REGISTRY#oci://}:$VERSION" '$1 == artifact { print $NF }' <<<"$LISTING")"
  if [[ -n "$HELD" ]]; then
    [[ "$HELD" == "$REVISION" ]] ||
      die "$REGISTRY:$VERSION already exists (revision $HELD): releases are immutable, pick the next version"
    say "$REGISTRY:$VERSION already holds $REVISION: an earlier run stopped after the push; going on from there"
    PUSHED=true
  fi
elif [[ "$LISTING" != *NAME_UNKNOWN* ]]; then
  die "could not list the artifacts in $REGISTRY: $LISTING"
fi

DIGEST=""
if [[ "$PUSHED" == true ]]; then
  DIGEST="$(awk -v artifact="${REGISTRY#oci://}:$VERSION" '$1 == artifact { print $2 }' <<<"$LISTING")"
else
  say "pushing platform/ of ${COMMIT:0:12} to $REGISTRY:$VERSION"
  # platform/ exactly as the commit has it, at the same path, in a directory of its own.
  WORK="$(mktemp -d)"
  trap 'rm -rf "$WORK"' EXIT
  # --8<-- [start:push]
  run git archive --format=tar --output="$WORK/platform.tar" "$COMMIT" platform
  run mkdir "$WORK/content"
  run tar -xf "$WORK/platform.tar" -C "$WORK/content"
  run_to "$WORK/pushed.json" "${flux[@]}" push artifact "$REGISTRY:$VERSION" \
    --path="$WORK/content" \
    --source="$SOURCE_URL" \
    --revision="$REVISION" \
    --output=json \
    "${INSECURE[@]}"
  # --8<-- [end:push]
  if [[ "$DRY_RUN" == false ]]; then
    DIGEST="$(sed -n 's/^ *"digest": *"\(sha256:[0-9a-f]*\)".*/\1/p' "$WORK/pushed.json")"
  fi
fi

# Sign the artifact by its digest, which a tag cannot be moved away from. A
# run that stopped after the tag was made had signed already.
if [[ "$PUSHED" == false || "$TAGGED" == false ]]; then
  if [[ "$DRY_RUN" == true ]]; then
    DIGEST="${DIGEST:-sha256:<digest of the push>}"
  fi
  [[ "$DIGEST" =~ ^sha256:[0-9a-f]{64}$ || "$DRY_RUN" == true ]] ||
    die "could not read the digest of $REGISTRY:$VERSION (got '$DIGEST'); nothing is signed or tagged"
  HTTP=()
  [[ ${#INSECURE[@]} -eq 0 ]] || HTTP=(--allow-http-registry --allow-insecure-registry)
  if [[ "$NO_TLOG" == true ]]; then
    # A signing configuration naming no service and an empty trusted root:
    # cosign signs with the key alone and asks no one on the network.
    OFFLINE="$(mktemp -d)"
    trap 'rm -rf "${WORK:-}" "$OFFLINE"' EXIT
    printf '%s\n' '{"mediaType":"application/vnd.dev.sigstore.signingconfig.v0.2+json","rekorTlogConfig":{},"tsaConfig":{}}' \
      >"$OFFLINE/signing-config.json"
    printf '%s\n' '{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}' >"$OFFLINE/trusted-root.json"
    SIGNING+=(--signing-config "$OFFLINE/signing-config.json" --trusted-root "$OFFLINE/trusted-root.json")
  fi
  say "signing ${REGISTRY#oci://}@$DIGEST"
  # --8<-- [start:sign]
  run "${cosign[@]}" sign --yes "${SIGNING[@]}" "${HTTP[@]}" "${REGISTRY#oci://}@$DIGEST"
  # --8<-- [end:sign]
fi

if [[ "$TAGGED" == false ]]; then
  say "tagging ${COMMIT:0:12} as $TAG"
  # --8<-- [start:tag]
  run git tag -a "$TAG" -m "platform $VERSION" "$COMMIT"
  # --8<-- [end:tag]
fi

say "pushing tag $TAG to $REMOTE"
run git push "$REMOTE" "refs/tags/$TAG"

cat <<NEXT

Released platform $VERSION. Staging follows it if $VERSION is inside its
semver range (clusters/staging/platform.yaml); to move production, change
ref.tag in clusters/production/platform.yaml to "$VERSION" in a pull request.
NEXT
