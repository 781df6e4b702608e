#!/usr/bin/env bash
# Clean a sandbox cluster down to its freshly bootstrapped state before the
# cluster itself is destroyed, so that nothing it created outside itself
# (volumes, load balancers, DNS records) is left behind.
#
# 1. Suspend the root Kustomization (flux-system), so nothing is re-applied.
# 2. Delete the Flux Kustomizations in reverse dependency order: those that
#    own external state (label gitops.example.org/external-state=true) and
#    what depends on them first, then the rest, down to the platform baseline.
#    Custom resources therefore go before the controllers that finalise them.
#    Each deletion uses Flux's own garbage collection with
#    deletionPolicy=WaitForTermination: the Kustomization is removed only
#    after everything it applied is gone, finalisers included.
# 3. Delete labelled HelmReleases no Kustomization removed, then any other
#    HelmRelease and every source except flux-system.
# 4. Check that only the flux-system GitRepository and Kustomization remain.
#
# The root stays suspended: resuming it would rebuild everything. Destroy the
# cluster next.
set -euo pipefail
# The helpers the scripts share (SC1091: a page quoting this whole script is
# checked without lib.sh beside it).
# shellcheck source-path=SCRIPTDIR source=lib.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<'USAGE'
Usage: sandbox-clean-down.sh --context CONTEXT [--timeout DURATION] [--dry-run]

Remove everything Flux reconciles on the cluster of CONTEXT except flux-system,
external state first, and wait for the finalisers.

  --context CONTEXT   the kubeconfig context of the sandbox. The script refuses
                      to run unless it is also the current context, and passes
                      it to every kubectl and flux command.
  --timeout DURATION  how long to wait for each deletion (default: 15m)
  --dry-run           list what would be deleted, in order, and print the
                      commands without running any that change the cluster
  -h, --help          show this help

Environment: KUBECTL and FLUX name the kubectl and flux binaries to use
(default: kubectl and flux from PATH).
USAGE
}

CONTEXT=""
TIMEOUT=15m
while [[ $# -gt 0 ]]; do
  case "$1" in
    --context) need_value "$@"; CONTEXT="$2"; shift 2 ;;
    --timeout) need_value "$@"; TIMEOUT="$2"; shift 2 ;;
    --dry-run) DRY_RUN=true; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done
[[ -n "$CONTEXT" ]] || usage_error "--context is required"
[[ "$TIMEOUT" =~ ^[0-9]+(s|m|h)$ ]] || die "--timeout must look like 90s, 15m or 1h: $TIMEOUT"

LABEL="gitops.example.org/external-state=true"
NS="flux-system"
kube=("${KUBECTL:-kubectl}" --context "$CONTEXT")
flux=("${FLUX:-flux}" --context "$CONTEXT")

# The one command without --context: it reads which context is current.
# --8<-- [start:context]
CURRENT="$("${KUBECTL:-kubectl}" config current-context 2>/dev/null || true)"
if [[ "$CURRENT" != "$CONTEXT" ]]; then
  die "the current context is '${CURRENT:-<none>}', not '$CONTEXT': switch to it first (kubectl config use-context $CONTEXT) so there is no doubt which cluster this empties"
fi
# --8<-- [end:context]
say "cleaning down the cluster of context $CONTEXT$([[ "$DRY_RUN" == true ]] && echo ' (dry run: nothing is changed)')"

# Read every Kustomization: name, the names it depends on, its label.
declare -A DEPS=() LABELLED=()
NAMES=()
while IFS=$'\t' read -r name deps labelled; do
  [[ -n "$name" && "$name" != flux-system ]] || continue
  NAMES+=("$name")
  DEPS[$name]="$deps"
  [[ "$labelled" == true ]] && LABELLED[$name]=1
done < <("${kube[@]}" -n "$NS" get kustomizations.kustomize.toolkit.fluxcd.io -o \
  jsonpath='{range .items[*]}{.metadata.name}{"\t"}{range .spec.dependsOn[*]}{.name}{" "}{end}{"\t"}{.metadata.labels.gitops\.example\.org/external-state}{"\n"}{end}')

# depends_on A B: does Kustomization A depend on B directly?
depends_on() { [[ " ${DEPS[$1]} " == *" $2 "* ]]; }

# The labelled Kustomizations and everything that (transitively) depends on
# them: deleting a labelled one while a dependant still runs would pull its
# foundation away.
declare -A FIRST=()
for name in "${!LABELLED[@]}"; do FIRST[$name]=1; done
changed=true
while [[ "$changed" == true ]]; do
  changed=false
  for a in "${NAMES[@]}"; do
    [[ -z "${FIRST[$a]:-}" ]] || continue
    for b in "${!FIRST[@]}"; do
      if depends_on "$a" "$b"; then FIRST[$a]=1; changed=true; break; fi
    done
  done
done

# Order: repeatedly take the Kustomizations no remaining one depends on,
# the external-state group before the rest.
ORDER=()
declare -A GONE=()
order_group() { # order_group first|rest
  local progress=true a b blocked
  while [[ "$progress" == true ]]; do
    progress=false
    for a in "${NAMES[@]}"; do
      [[ -z "${GONE[$a]:-}" ]] || continue
      if [[ "$1" == first && -z "${FIRST[$a]:-}" ]]; then continue; fi
      blocked=false
      for b in "${NAMES[@]}"; do
        if [[ -z "${GONE[$b]:-}" && "$b" != "$a" ]] && depends_on "$b" "$a"; then blocked=true; break; fi
      done
      if [[ "$blocked" == false ]]; then ORDER+=("$a"); GONE[$a]=1; progress=true; fi
    done
  done
}
order_group first
order_group rest
if [[ ${#ORDER[@]} -ne ${#NAMES[@]} ]]; then
  die "the dependsOn graph of the Kustomizations has a cycle; deleted order so far: ${ORDER[*]:-none}"
fi
say "Kustomizations to delete, in this order: ${ORDER[*]:-none}"

say "1. suspending the root Kustomization so nothing is re-applied"
# --8<-- [start:suspend]
run "${flux[@]}" suspend kustomization flux-system -n "$NS"
# --8<-- [end:suspend]

say "2. deleting Kustomizations, waiting for what each one applied to terminate"
for name in "${ORDER[@]}"; do
  say "   $name$([[ -n "${FIRST[$name]:-}" ]] && echo ' (owns external state or depends on what does)')"
  # A Kustomization applied by one deleted earlier may already be gone.
  if [[ "$DRY_RUN" == false ]] && ! "${kube[@]}" -n "$NS" get kustomization "$name" >/dev/null 2>&1; then
    say "   $name is already gone"
    continue
  fi
  # --8<-- [start:delete]
  run "${kube[@]}" -n "$NS" patch kustomization "$name" --type=merge \
    -p '{"spec":{"deletionPolicy":"WaitForTermination"}}'
  run "${kube[@]}" -n "$NS" delete kustomization "$name" --ignore-not-found --wait=true --timeout="$TIMEOUT"
  # --8<-- [end:delete]
done

say "3. deleting what is left: labelled HelmReleases, other HelmReleases, sources other than flux-system"
run "${kube[@]}" delete helmreleases.helm.toolkit.fluxcd.io --all-namespaces -l "$LABEL" --wait=true --timeout="$TIMEOUT"
run "${kube[@]}" delete helmreleases.helm.toolkit.fluxcd.io --all-namespaces --all --wait=true --timeout="$TIMEOUT"
SOURCES=()
while read -r ref; do
  [[ -n "$ref" && "$ref" != gitrepository.source.toolkit.fluxcd.io/flux-system ]] && SOURCES+=("$ref")
done < <("${kube[@]}" -n "$NS" get gitrepositories.source.toolkit.fluxcd.io,ocirepositories.source.toolkit.fluxcd.io,helmrepositories.source.toolkit.fluxcd.io,helmcharts.source.toolkit.fluxcd.io,buckets.source.toolkit.fluxcd.io -o name)
if [[ ${#SOURCES[@]} -gt 0 ]]; then
  run "${kube[@]}" -n "$NS" delete "${SOURCES[@]}" --wait=true --timeout="$TIMEOUT"
fi

if [[ "$DRY_RUN" == true ]]; then
  say "dry run: nothing was changed"
  exit 0
fi

say "4. checking that the cluster is back to its bootstrapped state"
LEFT="$("${kube[@]}" get kustomizations.kustomize.toolkit.fluxcd.io,helmreleases.helm.toolkit.fluxcd.io --all-namespaces -o name |
  grep -v '^kustomization.kustomize.toolkit.fluxcd.io/flux-system$' || true)"
if [[ -n "$LEFT" ]]; then
  die "still present after the clean-down (look at their finalizers and the controller logs): $LEFT"
fi
say "done: only flux-system is left, and it stays suspended. Destroy the cluster now."
