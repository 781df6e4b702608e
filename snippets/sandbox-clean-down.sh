#!/usr/bin/env bash
# Clean a sandbox cluster down to its freshly bootstrapped state before the
# cluster itself is destroyed, so that nothing it created outside itself
# (volumes, load balancers, DNS records) is left behind.
#
# 0. Refuse unless CONTEXT is the current context and its root Kustomization
#    reconciles a sandbox directory (./clusters/sandbox-*).
# 1. Suspend the root Kustomization (flux-system), so nothing is re-applied.
# 2. Delete the Flux Kustomizations in reverse dependency order: those that
#    own external state (label gitops.example.org/external-state=true) and
#    what depends on them first, then the rest, down to the platform baseline.
#    Custom resources therefore go before the controllers that finalise them.
#    Each deletion uses Flux's own garbage collection with
#    deletionPolicy=WaitForTermination and the Kustomization's timeout set to
#    --timeout: the Kustomization is removed only after everything it applied
#    is gone, finalisers included. The controller gives up after that timeout
#    and removes the Kustomization anyway, so the script then checks that
#    every object of its inventory is gone.
# 3. Delete labelled HelmReleases no Kustomization removed, then any other
#    HelmRelease and every source except flux-system.
# 4. Wait until no PersistentVolume with reclaimPolicy Delete is left: the
#    storage driver deletes the volume behind it only after its claim is gone.
# 5. Check that only the flux-system GitRepository and Kustomization remain.
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
external state first, and wait for the finalisers and the volumes.

  --context CONTEXT   the kubeconfig context of the sandbox. The script refuses
                      to run unless it is also the current context and its
                      flux-system Kustomization reconciles a
                      ./clusters/sandbox-* directory, and passes it to every
                      kubectl and flux command.
  --timeout DURATION  how long to wait for each deletion and each volume
                      (default: 15m)
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
[[ "$TIMEOUT" =~ ^([0-9]+)(s|m|h)$ ]] || die "--timeout must look like 90s, 15m or 1h: $TIMEOUT"
# kubectl waits a minute longer than the controller, so that when the
# controller gives up, the check after the deletion names what is left.
declare -A UNIT_SECONDS=([s]=1 [m]=60 [h]=3600)
KUBECTL_TIMEOUT="$((BASH_REMATCH[1] * UNIT_SECONDS[${BASH_REMATCH[2]}] + 60))s"

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
# Only a sandbox: its root Kustomization reconciles a clusters/sandbox-* directory.
ROOT_PATH="$("${kube[@]}" -n "$NS" get kustomizations.kustomize.toolkit.fluxcd.io flux-system -o jsonpath='{.spec.path}')"
if [[ ! "$ROOT_PATH" =~ ^(\./)?clusters/sandbox-[a-z0-9][a-z0-9-]*/?$ ]]; then
  die "the flux-system Kustomization of context $CONTEXT reconciles '$ROOT_PATH', not a ./clusters/sandbox-* directory: this script only empties sandbox clusters"
fi
# --8<-- [end:context]
say "cleaning down the cluster of context $CONTEXT ($ROOT_PATH)$([[ "$DRY_RUN" == true ]] && echo ' (dry run: nothing is changed)')"

# Read every Kustomization: name, the names it depends on, its label; "|"
# separates the fields (a tab would not do: read merges empty tab-separated
# fields, so a missing dependsOn would shift the label into its place).
# (Each listing is read into a variable first: a command that fails inside
# `< <(...)` would go unnoticed and the loop would see an empty list.)
declare -A DEPS=() LABELLED=()
NAMES=()
LISTING="$("${kube[@]}" -n "$NS" get kustomizations.kustomize.toolkit.fluxcd.io -o \
  jsonpath='{range .items[*]}{.metadata.name}{"|"}{range .spec.dependsOn[*]}{.name}{" "}{end}{"|"}{.metadata.labels.gitops\.example\.org/external-state}{"\n"}{end}')"
while IFS='|' read -r name deps labelled; do
  [[ -n "$name" && "$name" != flux-system ]] || continue
  NAMES+=("$name")
  DEPS[$name]="$deps"
  [[ "$labelled" == true ]] && LABELLED[$name]=1
done <<<"$LISTING"

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

# inventory NAME: the objects Kustomization NAME applied, one "ref name
# namespace" a line (ref: Kind.version.group, or Kind for the core group; an
# empty namespace for cluster-scoped objects). Inventory ids are
# namespace_name_group_kind, and none of those contains "_".
inventory() {
  local id version ns obj group kind
  "${kube[@]}" -n "$NS" get kustomizations.kustomize.toolkit.fluxcd.io "$1" \
    -o jsonpath='{range .status.inventory.entries[*]}{.id}{" "}{.v}{"\n"}{end}' |
    while read -r id version; do
      [[ -n "$id" ]] || continue
      IFS=_ read -r ns obj group kind <<<"$id"
      printf '%s %s %s\n' "$kind${group:+.$version.$group}" "$obj" "$ns"
    done
}
# still_there REF NAME NAMESPACE: does the object exist? (Its kind being gone
# from the API, CRD deleted, means it is gone too; any other error stops.)
still_there() {
  local out
  if ! out="$("${kube[@]}" get "$1" "$2" ${3:+-n "$3"} --ignore-not-found -o name 2>&1)"; then
    [[ "$out" == *"doesn't have a resource type"* || "$out" == *"no matches for kind"* ]] && return 1
    die "could not check $1 $2${3:+ in $3}: $out"
  fi
  [[ -n "$out" ]]
}

say "2. deleting Kustomizations, waiting for what each one applied to terminate"
for name in "${ORDER[@]}"; do
  say "   $name$([[ -n "${FIRST[$name]:-}" ]] && echo ' (owns external state or depends on what does)')"
  # A Kustomization applied by one deleted earlier may already be gone.
  if [[ -z "$("${kube[@]}" -n "$NS" get kustomizations.kustomize.toolkit.fluxcd.io "$name" --ignore-not-found -o name)" ]]; then
    say "   $name is already gone"
    continue
  fi
  APPLIED="$(inventory "$name")"
  say "   $name applied $(grep -c . <<<"$APPLIED" || true) objects"
  # --8<-- [start:delete]
  run "${kube[@]}" -n "$NS" patch kustomization "$name" --type=merge \
    -p "{\"spec\":{\"deletionPolicy\":\"WaitForTermination\",\"timeout\":\"$TIMEOUT\"}}"
  run "${kube[@]}" -n "$NS" delete kustomization "$name" --ignore-not-found --wait=true --timeout="$KUBECTL_TIMEOUT"
  # --8<-- [end:delete]
  # The controller gives up waiting after the Kustomization's timeout and
  # lets it go anyway: check that what it applied is really gone.
  if [[ "$DRY_RUN" == false ]]; then
    REMAINING=()
    while read -r ref obj ns; do
      [[ -n "$ref" ]] || continue
      if still_there "$ref" "$obj" "$ns"; then REMAINING+=("$ref/$obj${ns:+ (namespace $ns)}"); fi
    done <<<"$APPLIED"
    [[ ${#REMAINING[@]} -eq 0 ]] ||
      die "Kustomization $name is deleted, but not everything it applied is gone after $TIMEOUT (look at their finalizers and at the logs of the controllers that own them): ${REMAINING[*]}"
  fi
done

say "3. deleting what is left: labelled HelmReleases, other HelmReleases, sources other than flux-system"
run "${kube[@]}" delete helmreleases.helm.toolkit.fluxcd.io --all-namespaces -l "$LABEL" --wait=true --timeout="$TIMEOUT"
run "${kube[@]}" delete helmreleases.helm.toolkit.fluxcd.io --all-namespaces --all --wait=true --timeout="$TIMEOUT"
# One kind at a time: a kind whose CRD is not installed has nothing to delete;
# any other failure stops the script.
SOURCES=()
for kind in gitrepositories ocirepositories helmrepositories helmcharts buckets; do
  kind="$kind.source.toolkit.fluxcd.io"
  if [[ -z "$("${kube[@]}" get customresourcedefinitions.apiextensions.k8s.io "$kind" --ignore-not-found -o name)" ]]; then
    say "   no $kind on this cluster (its CRD is not installed)"
    continue
  fi
  LISTING="$("${kube[@]}" -n "$NS" get "$kind" -o name)"
  while read -r ref; do
    [[ -n "$ref" && "$ref" != gitrepository.source.toolkit.fluxcd.io/flux-system ]] && SOURCES+=("$ref")
  done <<<"$LISTING"
done
if [[ ${#SOURCES[@]} -gt 0 ]]; then
  run "${kube[@]}" -n "$NS" delete "${SOURCES[@]}" --wait=true --timeout="$TIMEOUT"
fi

say "4. waiting for the volumes: no PersistentVolume with reclaimPolicy Delete may be left"
# The storage driver deletes the volume behind such a PersistentVolume after
# its claim is gone; destroying the cluster before that leaks the volume.
LISTING="$("${kube[@]}" get persistentvolumes -o \
  jsonpath='{range .items[*]}{.metadata.name}{"|"}{.spec.persistentVolumeReclaimPolicy}{"\n"}{end}')"
VOLUMES=()
while IFS='|' read -r pv policy; do
  [[ -n "$pv" && "$policy" == Delete ]] && VOLUMES+=("persistentvolume/$pv")
done <<<"$LISTING"
if [[ ${#VOLUMES[@]} -gt 0 ]]; then
  if ! run "${kube[@]}" wait --for=delete "${VOLUMES[@]}" --timeout="$TIMEOUT"; then
    die "PersistentVolumes with reclaimPolicy Delete are still there after $TIMEOUT: ${VOLUMES[*]}. Destroying the cluster now would leak their volumes: look at the PersistentVolumes' events and the logs of the storage driver, and delete the volumes by hand if the driver cannot"
  fi
else
  say "   none"
fi

if [[ "$DRY_RUN" == true ]]; then
  say "dry run: nothing was changed"
  exit 0
fi

say "5. checking that the cluster is back to its bootstrapped state"
LISTING="$("${kube[@]}" get kustomizations.kustomize.toolkit.fluxcd.io,helmreleases.helm.toolkit.fluxcd.io --all-namespaces -o name)"
LEFT="$(grep -v '^kustomization.kustomize.toolkit.fluxcd.io/flux-system$' <<<"$LISTING" || true)"
if [[ -n "$LEFT" ]]; then
  die "still present after the clean-down (look at their finalizers and the controller logs): $LEFT"
fi
say "done: only flux-system is left, and it stays suspended. Destroy the cluster now."
