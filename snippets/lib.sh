# shellcheck shell=bash
# What the scripts in snippets/ share: messages, printing and running commands
# (with --dry-run), argument checks. Each script sources it right after
# `set -euo pipefail` and defines its own usage().

# The script's name without .sh, in front of every error.
PROG="$(basename "$0" .sh)"
# The root of this repository: the default of the scripts' --root.
# shellcheck disable=SC2034 # used by the scripts that source this file
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

die() { printf '%s: %s\n' "$PROG" "$*" >&2; exit 1; }
say() { printf '==> %s\n' "$*"; }
# usage_error MESSAGE: the usage on stderr, then die.
usage_error() { usage >&2; die "$@"; }
# need_value "$@": inside the argument loop, the option $1 must have a value.
need_value() { [[ $# -ge 2 ]] || die "$1 needs a value"; }
# common_argument ARG: what the argument loop does with an argument that is
# not one of the script's own options: --dry-run, -h/--help, an unknown option
# (an error), or a positional argument (appended to ARGS).
common_argument() {
  case "$1" in
    --dry-run) DRY_RUN=true ;;
    -h | --help) usage; exit 0 ;;
    -*) usage_error "unknown option: $1" ;;
    *) ARGS+=("$1") ;;
  esac
}

# branch_and_root_arguments "$@": the whole argument loop of a script whose
# own options are --branch BRANCH and --root DIR: sets BRANCH and ROOT, and
# appends the positional arguments to ARGS.
# shellcheck disable=SC2034 # BRANCH and ROOT are read by the calling script
branch_and_root_arguments() {
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --branch) need_value "$@"; BRANCH="$2"; shift 2 ;;
      --root) need_value "$@"; ROOT="$2"; shift 2 ;;
      *) common_argument "$1"; shift ;;
    esac
  done
}

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

# check_branch_name BRANCH: empty, or a branch name the sed edits can carry.
check_branch_name() {
  [[ -z "$1" || "$1" =~ ^[A-Za-z0-9._/-]+$ ]] || die "not a branch name this script handles: $1"
}
# check_sandbox_name NAME
check_sandbox_name() {
  [[ "$1" =~ ^sandbox-[a-z0-9][a-z0-9-]*$ ]] ||
    die "SANDBOX must look like sandbox-<name> (lower case, digits, dashes): $1"
}
# follows_a_branch DIR CLUSTER: does the platform source in DIR/platform.yaml
# (the directory of clusters/CLUSTER) follow a git branch? It does when it is a
# GitRepository, which must then have exactly one branch: line; an
# OCIRepository follows platform releases.
follows_a_branch() {
  grep -q '^kind: GitRepository' "$1/platform.yaml" || return 1
  [[ "$(grep -c '^ *branch: ' "$1/platform.yaml")" -eq 1 ]] ||
    die "expected exactly one 'branch:' line in clusters/$2/platform.yaml"
}
# require_context CONTEXT: the context must exist in the kubeconfig (the one
# command without --context: it lists the contexts there are).
require_context() {
  local contexts
  contexts="$("${KUBECTL:-kubectl}" config get-contexts -o name)"
  grep -qxF -- "$1" <<<"$contexts" ||
    die "no context '$1' in the kubeconfig (${KUBECONFIG:-~/.kube/config}); kubectl config get-contexts lists those there are"
}
