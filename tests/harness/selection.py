"""Which checks look at a block: the one answer that the checks, the report
and the site's "checked by" mark share.

A check does not pick its blocks itself: it asks ``select(CHECK, blocks)``.
The site build (``hooks/checked_by.py``) asks ``Marks(root).of_blocks(blocks)``
for the same answer, worded for a reader, and shows it in a small line under
each block. Both read the predicates of ``BLOCK_CHECKS``, so a mark names a
check only where that check looks at the block. What a check does once it
has looked is up to the check; ``harness.proof`` compares every mark with the
findings of a run, so a check that selects a block and then says nothing
about it (or skips it) fails the run, and so does a check that tested a block
its mark does not name (``tests/test_marks.py``).

A mark claims three kinds of check:

- block checks (``BLOCK_CHECKS``): a check that reads the block's own text,
  offline, or the cluster tier, which runs ``cluster NAME`` blocks on a
  cluster made by each provider the project's CI runs it with
  (``ci_providers``, read from ``.ci/run``);
- file checks (``FILE_CHECKS``): checks of the whole tree that read a file
  the block shows (part of): ``kustomize build`` of a kustomization that
  lists it, and Flux's references on each cluster whose Flux applies it.
  Which files those are is read from the tree statically (``harness.coverage``); the
  checks' passing findings name the files they really covered
  (``Finding.covers``), and ``harness.proof`` holds the one to the other. The site's
  view of a tree file (``hooks/tree_views.py``) carries the file's own marks
  (``Marks.of_file``, ``Marks.of_usage``): these, and YAML parsed, schema,
  shellcheck of a script, and its --help text;
- or none: then the mark says why, the reason of a ``skip`` comment, or that
  no check reads blocks of that language.

Everything here reads the tree and the pages only, runs no tool and is cheap:
the site build runs it on every page.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from harness import coverage as tree_coverage
from harness import metadata
from harness.model import Block, Mode

OFFLINE = "offline"
CLUSTER_TIER = "cluster"

# Where docs/testing.md explains each kind of check (heading anchors); the
# site build fails when one of them is not a heading of that page.
TESTING_PAGE = "testing.md"
WHAT_IS_CHECKED = "what-is-checked"
LOCAL_RUNS = "local-blocks-and-their-output"
CLUSTER_RUNS = "the-cluster-tier-without-docker"
SKIPS = "when-to-skip-and-how-to-say-why"
UNCHECKED = "the-metadata-comment"
THE_MARK = "the-checked-by-mark"
EVERY_REFERENCE = "every-reference-resolves"
API_SERVER = "the-api-server-in-the-offline-tier"
SECTIONS = (WHAT_IS_CHECKED, LOCAL_RUNS, CLUSTER_RUNS, SKIPS, UNCHECKED, THE_MARK, EVERY_REFERENCE, API_SERVER)
# The whole-tree checks that hold each cluster's applied objects, one finding
# per cluster (standing at clusters/NAME/flux-system): a mark names them with
# the clusters whose Flux applies the file.
PER_CLUSTER = ("flux-refs", "references", "api-server")

# The script the project's CI runs: the cluster tier's providers are read
# from its `nox -s e2e -- --cluster NAME` lines.
CI_SCRIPT = ".ci/run"


@dataclass(frozen=True)
class Check:
    """One check as a mark names it."""

    name: str  # the name its findings carry ("schema")
    words: str  # what the mark says
    section: str  # the heading of docs/testing.md that explains it
    test: str  # the test that runs it: the end of its pytest node id
    tier: str = OFFLINE
    key: str = ""  # where two entries share a finding name; else the name

    @property
    def id(self) -> str:
        return self.key or self.name


@dataclass(frozen=True)
class BlockCheck(Check):
    # (block, the block before it on its page or None) -> whether the check
    # looks at the block.
    applies: Callable[[Block, Block | None], bool] = lambda block, previous: False


# -- the predicates ----------------------------------------------------------------


def resolved(block: Block) -> bool:
    """Every include of the block resolved. A block whose include did not has
    one finding, the snippets check's failure, and no check reads it."""
    from harness import extract

    return extract.unresolved_include(block) is None


def _manifests(block: Block, previous: Block | None) -> bool:
    return block.mode is Mode.MANIFESTS and resolved(block)


def unvalidated_kinds(block: Block) -> list[tuple[str, str]]:
    """(apiVersion, kind) of each object in a manifest block that has no
    schema (``schemas/no-schema.yaml``): the schema check skips them."""
    from harness.checks import yaml_docs
    from harness.no_schema import reason

    kinds = [(str(doc.data["apiVersion"]), str(doc.data["kind"]))
             for doc in yaml_docs.block_docs(block).docs if doc.is_object]
    return [kind for kind in kinds if reason(*kind) is not None]


def _validated(block: Block, previous: Block | None) -> bool:
    """A manifest block that parses and has something the schema check
    validates (or fails): no document at all, a document that is not an
    object (a fragment), or an object whose kind has a schema."""
    from harness.checks import yaml_docs

    if not _manifests(block, previous):
        return False
    parsed = yaml_docs.block_docs(block)
    if parsed.error is not None:
        return False  # the yaml-parse check reports it; the schema check leaves it
    objects = [doc for doc in parsed.docs if doc.is_object]
    return not parsed.docs or len(objects) < len(parsed.docs) or len(unvalidated_kinds(block)) < len(objects)


LINTED_MODES = (Mode.STATIC, Mode.LOCAL, Mode.CLUSTER)


def _linted(block: Block, previous: Block | None) -> bool:
    return block.lang in metadata.SHELL_LANGS and block.mode in LINTED_MODES and resolved(block)


def _names_a_tool(block: Block, previous: Block | None) -> bool:
    from harness.checks import cli_help

    return _linted(block, previous) and bool(cli_help.tools_used(block))


def _runs_locally(block: Block, previous: Block | None) -> bool:
    return block.mode is Mode.LOCAL and resolved(block) and not block.errors


def _output_of_local(block: Block, previous: Block | None) -> bool:
    return block.mode is Mode.OUTPUT and previous is not None and _runs_locally(previous, None)


def _listing(block: Block, previous: Block | None) -> bool:
    return block.mode is Mode.TREE and resolved(block)


def _diagram(block: Block, previous: Block | None) -> bool:
    from harness.checks import diagrams

    return block.lang == diagrams.LANG and block.mode is Mode.NONE and resolved(block)


def _workflow(block: Block, previous: Block | None) -> bool:
    return block.mode is Mode.WORKFLOW and resolved(block)


def _hcl(block: Block, previous: Block | None) -> bool:
    return block.mode is Mode.HCL and resolved(block)


def _on_a_cluster(block: Block, previous: Block | None) -> bool:
    # As the cluster tier picks them (tests/cluster/scenarios/doc_blocks.py).
    return block.mode is Mode.CLUSTER


def _output_of_cluster(block: Block, previous: Block | None) -> bool:
    return block.mode is Mode.OUTPUT and previous is not None and previous.mode is Mode.CLUSTER


SHELL_TESTS = "test_shell.py::"
CLUSTER_TEST = "test_cluster.py::test_cluster_blocks_run_in_page_order"

# In the order a mark names them: what runs the block first, then what reads it.
BLOCK_CHECKS: tuple[BlockCheck, ...] = (
    BlockCheck("cluster", "run on", CLUSTER_RUNS, CLUSTER_TEST, CLUSTER_TIER, applies=_on_a_cluster),
    BlockCheck("output", "compared with what the block above prints,", CLUSTER_RUNS, CLUSTER_TEST, CLUSTER_TIER,
               key="cluster-output",
               applies=_output_of_cluster),
    BlockCheck("local", "run locally", LOCAL_RUNS, SHELL_TESTS + "test_local_blocks_and_output",
               applies=_runs_locally),
    BlockCheck("output", "compared with what the block above prints", LOCAL_RUNS,
               SHELL_TESTS + "test_local_blocks_and_output",
               applies=_output_of_local),
    BlockCheck("tree-listing", "listing compared with the repository", WHAT_IS_CHECKED,
               "test_tree_listing.py::test_tree_listings", applies=_listing),
    BlockCheck("diagrams", "parsed by Mermaid", WHAT_IS_CHECKED, "test_diagrams.py::test_diagrams_parse",
               applies=_diagram),
    BlockCheck("yaml-parse", "YAML parsed", WHAT_IS_CHECKED, "test_manifests.py::test_manifests[yaml-parse]",
               applies=_manifests),
    BlockCheck("schema", "schema", WHAT_IS_CHECKED, "test_manifests.py::test_manifests[schema]",
               applies=_validated),
    BlockCheck("shellcheck", "shellcheck", WHAT_IS_CHECKED, SHELL_TESTS + "test_shellcheck", applies=_linted),
    BlockCheck("cli-help", "flags of", WHAT_IS_CHECKED, SHELL_TESTS + "test_cli_flags_against_help",
               applies=_names_a_tool),
    BlockCheck("actionlint", "actionlint", WHAT_IS_CHECKED, "test_workflows.py::test_workflows", applies=_workflow),
    BlockCheck("workflow-pins", "tool versions against versions.yaml", WHAT_IS_CHECKED,
               "test_workflows.py::test_workflows", applies=_workflow),
    BlockCheck("hcl", "HCL parsed and formatted", WHAT_IS_CHECKED, "test_hcl.py::test_hcl_parses_and_is_formatted", applies=_hcl),
)
# Checks of a tree file as a whole: for a block that shows (part of) one, and
# for the file's own view on the site (hooks/tree_views.py).
FILE_CHECKS: tuple[Check, ...] = (
    Check("yaml-parse", "YAML parsed", WHAT_IS_CHECKED, "test_manifests.py::test_manifests[yaml-parse]",
          key="file-yaml-parse"),
    Check("schema", "schema", WHAT_IS_CHECKED, "test_manifests.py::test_manifests[schema]", key="file-schema"),
    Check("kustomize-build", "kustomize build", WHAT_IS_CHECKED,
          "test_manifests.py::test_manifests[kustomize-build]"),
    Check("flux-refs", "Flux paths and dependsOn", WHAT_IS_CHECKED, "test_manifests.py::test_manifests[flux-refs]"),
    Check("references", "references resolved", EVERY_REFERENCE, "test_manifests.py::test_manifests[references]"),
    Check("api-server", "accepted by a real API server", API_SERVER,
          "test_manifests.py::test_manifests[api-server]"),
    Check("shellcheck", "shellcheck", WHAT_IS_CHECKED, SHELL_TESTS + "test_shellcheck", key="file-shellcheck"),
    # A script's view shows its --help text first.
    Check("help-text", "the same as what --help prints", WHAT_IS_CHECKED,
          "test_tree_views.py::test_a_script_view_shows_what_its_help_prints"),
)
CHECKS = {check.id: check for check in (*BLOCK_CHECKS, *FILE_CHECKS)}


def previous_blocks(blocks: Iterable[Block]) -> dict[tuple[str, int], Block]:
    """Each block's predecessor on its page, by (page, index)."""
    blocks = list(blocks)
    by_key = {(b.page, b.index): b for b in blocks}
    return {(b.page, b.index): by_key[(b.page, b.index - 1)] for b in blocks if (b.page, b.index - 1) in by_key}


def applies(check_id: str, block: Block, previous: Block | None = None) -> bool:
    check = CHECKS[check_id]
    return isinstance(check, BlockCheck) and check.applies(block, previous)


def select(check_id: str, blocks: Iterable[Block]) -> list[Block]:
    """The blocks check ``check_id`` looks at, in their order: what each
    check module runs on."""
    blocks = list(blocks)
    before = previous_blocks(blocks)
    return [b for b in blocks if applies(check_id, b, before.get((b.page, b.index)))]


# -- the cluster tier's providers in CI ------------------------------------------------------


class CIError(ValueError):
    """``.ci/run`` runs the cluster tier in a way the mark cannot read."""


E2E = re.compile(r"\bnox\b.*(?:\s-s|--sessions?)\s+e2e\b")


def shell_lines(text: str) -> list[tuple[int, str]]:
    """(number of its first line, command line) of a shell script, with a
    line that ends in a backslash joined to the next, as the shell reads it."""
    out: list[tuple[int, str]] = []
    pending, first = "", 0
    for number, line in enumerate(text.splitlines(), 1):
        if not pending:
            first = number
        if line.endswith("\\") and not line.lstrip().startswith("#"):
            pending += line[:-1]
            continue
        out.append((first, pending + line))
        pending = ""
    if pending:
        out.append((first, pending))
    return out


def ci_providers(root: Path) -> tuple[str, ...]:
    """The cluster providers the project's CI runs the cluster tier with: the
    ``--cluster NAME`` of every ``nox -s e2e`` line of ``.ci/run``, in order.
    Empty when CI does not run the tier. Adding a provider to CI is adding
    its line there; the marks follow."""
    path = Path(root) / CI_SCRIPT
    if not path.is_file():
        return ()
    return _ci_providers(path.read_text(encoding="utf-8"))


@functools.lru_cache(maxsize=8)
def _ci_providers(text: str) -> tuple[str, ...]:  # per content: a folder may hold another tree later
    from cluster.preflight import REQUIRED_BY_PROVIDER

    found: list[str] = []
    for number, line in shell_lines(text):
        if line.lstrip().startswith("#") or not E2E.search(line):
            continue
        try:
            words = shlex.split(line, comments=True)
        except ValueError as error:
            raise CIError(f"{CI_SCRIPT}:{number}: cannot read the line ({error})") from None
        names = [words[i + 1] for i, w in enumerate(words[:-1]) if w == "--cluster"]
        names += [w.split("=", 1)[1] for w in words if w.startswith("--cluster=")]
        known = sorted(REQUIRED_BY_PROVIDER)
        if len(names) != 1 or names[0] not in REQUIRED_BY_PROVIDER:
            raise CIError(
                f"{CI_SCRIPT}:{number} runs the cluster tier, but the checked-by marks cannot tell on which "
                f"provider: write one literal `--cluster NAME` on the line (one of {', '.join(known)})")
        if names[0] not in found:
            found.append(names[0])
    return tuple(found)


# -- a block's mark ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """One check a mark names for a block: ``detail`` completes its words
    (the tools, the clusters); ``path`` is the tree file of a file check."""

    check: Check
    detail: str = ""
    path: str | None = None
    clusters: tuple[str, ...] = ()


@dataclass
class Mark:
    """What the line under a block says: the checks that look at it, or why
    none does. ``notes`` are things a reader should know that no check
    claims (objects without a schema)."""

    claims: list[Claim] = field(default_factory=list)
    skipped: str | None = None  # the skip comment's reason
    unchecked: str | None = None  # why no check reads the block
    notes: list[str] = field(default_factory=list)

    @property
    def checks(self) -> list[str]:
        """The ids of the checks claimed, once each, in order."""
        return list(dict.fromkeys(claim.check.id for claim in self.claims))

    def items(self) -> list[tuple[str, str]]:
        """(words, section) of each thing the mark names, in order: one per
        check, the details of its claims joined ("Flux paths and dependsOn ·
        references resolved · accepted by a real API server on development,
        staging", the clusters said once); "YAML parsed" goes without saying next to
        "schema"."""
        grouped: dict[str, list[Claim]] = {}
        for claim in self.claims:
            grouped.setdefault(claim.check.id, []).append(claim)
        names = {claim.check.name for claim in self.claims}
        out = []
        clusters_of: dict[str, str] = {}
        for check_id, claims in grouped.items():
            if claims[0].check.id in PER_CLUSTER:
                clusters_of[check_id] = ", ".join(
                    sorted({c for claim in claims for c in claim.clusters}, key=_cluster_order))
        per_cluster = [check_id for check_id in grouped if check_id in clusters_of]
        for check_id, claims in grouped.items():
            check = claims[0].check
            if check.name == "yaml-parse" and "schema" in names:
                continue
            if check_id in clusters_of:
                # The per-cluster checks of a file name the same clusters: say
                # them once, after the last ("... · accepted by a real API
                # server on development, staging").
                following = per_cluster[per_cluster.index(check_id) + 1:]
                same = following and all(clusters_of[c] == clusters_of[check_id] for c in following)
                detail = "" if same else f"on {clusters_of[check_id]}"
            else:
                detail = ", ".join(dict.fromkeys(claim.detail for claim in claims if claim.detail))
            out.append((f"{check.words} {detail}".strip(), check.section))
        return out


def _cluster_order(name: str) -> tuple[int, str]:
    order = ("development", "staging", "production")
    return (order.index(name) if name in order else len(order), name)


def providers_words(providers: tuple[str, ...]) -> str:
    if not providers:
        return "by the cluster tier (not in CI)"
    return f"on {' and '.join(providers)} in CI"


class Marks:
    """The marks of one tree's blocks (its coverage and CI providers read
    once)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self._coverage: tree_coverage.Coverage | None = None
        self._scripts: set[str] | None = None
        self._tree: dict | None = None

    @property
    def providers(self) -> tuple[str, ...]:
        return ci_providers(self.root)

    @property
    def tree(self) -> dict:
        """The tree's YAML files, parsed (``checks.yaml_docs.tree``), read once."""
        if self._tree is None:
            from harness.checks import yaml_docs

            self._tree = yaml_docs.tree(self.root)
        return self._tree

    @property
    def coverage(self) -> tree_coverage.Coverage:
        if self._coverage is None:
            self._coverage = tree_coverage.coverage(self.root)
        return self._coverage

    def of_blocks(self, blocks: Iterable[Block]) -> dict[tuple[str, int], Mark]:
        """The mark of every block, by (page, index)."""
        blocks = list(blocks)
        before = previous_blocks(blocks)
        return {(b.page, b.index): self.of(b, before.get((b.page, b.index))) for b in blocks}

    def of(self, block: Block, previous: Block | None = None) -> Mark:
        mark = Mark()
        for check in BLOCK_CHECKS:
            if check.applies(block, previous):
                mark.claims.append(Claim(check, self._detail(check, block)))
            if check.id == "schema" and _manifests(block, previous):
                mark.claims.extend(self._file_claims(block))
        if any(claim.check.id == "yaml-parse" for claim in mark.claims):
            mark.notes.extend(_no_schema_notes(unvalidated_kinds(block), mark))
        if not mark.claims:
            if block.mode is Mode.SKIP:
                mark.skipped = block.options.get("reason", "").strip() or "(no reason given)"
            else:
                mark.unchecked = unchecked_reason(block, previous)
        return mark

    def _detail(self, check: BlockCheck, block: Block) -> str:
        if check.id == "cli-help":
            from harness.checks import cli_help

            return ", ".join(cli_help.tools_used(block))
        if check.id == "cluster":
            return f"{block.options.get('cluster', '?')}, {providers_words(self.providers)}"
        if check.id == "cluster-output":
            return providers_words(self.providers)
        return ""

    def of_file(self, path: str) -> Mark:
        """The mark of a tree file's own view: the checks of the whole tree
        that read that file."""
        from harness.checks import yaml_docs
        from harness.no_schema import reason

        mark = Mark()
        tree_file = self.tree.get(path)
        if tree_file is not None:
            mark.claims.append(Claim(CHECKS["file-yaml-parse"], path=path))
            objects = [doc for doc in tree_file.docs if doc.is_object]
            kinds = [(str(doc.data["apiVersion"]), str(doc.data["kind"])) for doc in objects]
            if any(reason(*kind) is None for kind in kinds):
                mark.claims.append(Claim(CHECKS["file-schema"], path=path))
            mark.claims.extend(self._tree_claims(path))
            mark.notes.extend(_no_schema_notes(kinds, mark))
        elif path in self.scripts:
            mark.claims.append(Claim(CHECKS["file-shellcheck"], path=path))
        if not mark.claims:
            mark.unchecked = ("the site's configuration: the site build reads it, not a check of the tree"
                              if os.path.basename(path) in yaml_docs.SKIP_FILES
                              else f"no check reads {Path(path).suffix or Path(path).name} files of the tree")
        return mark

    def of_usage(self, path: str) -> Mark:
        """The mark of the --help text a script's view shows first."""
        return Mark(claims=[Claim(CHECKS["help-text"], path=path)])

    @property
    def scripts(self) -> set[str]:
        """The scripts shellcheck reads as a whole (``checks.shellcheck``)."""
        if self._scripts is None:
            from harness.checks import shellcheck

            self._scripts = set(shellcheck.scripts(self.root))
        return self._scripts

    def _file_claims(self, block: Block) -> list[Claim]:
        claims = []
        for path in block.included:
            claims.extend(self._tree_claims(path))
        return claims

    def _tree_claims(self, path: str) -> list[Claim]:
        """The whole-tree checks that cover a YAML file of the tree."""
        claims = []
        if path in self.coverage.built:
            claims.append(Claim(CHECKS["kustomize-build"], path=path))
        clusters = self.coverage.applied.get(path)
        if clusters:
            claims.extend(Claim(CHECKS[check], ", ".join(clusters), path=path, clusters=clusters)
                          for check in PER_CLUSTER)
        return claims


def _no_schema_notes(kinds: list[tuple[str, str]], mark: Mark) -> list[str]:
    """"no schema for KIND" for each kind without one, but kustomize's own
    (its kustomization files), where the mark names the build that checks
    them instead."""
    from harness.no_schema import reason

    built = "kustomize-build" in mark.checks
    return [f"no schema for {kind}" for api_version, kind in dict.fromkeys(kinds)
            if reason(api_version, kind) is not None
            and not (built and api_version.startswith(tree_coverage.KUSTOMIZE_CONFIG_GROUP))]


def unchecked_reason(block: Block, previous: Block | None) -> str:
    """Why no check reads a block that is not skipped."""
    if block.mode is Mode.NONE:
        return f"no check reads {block.lang or 'plain'} blocks"
    if not resolved(block):
        return "its include does not resolve"
    if block.errors:
        return "its test comment is invalid"
    if block.mode is Mode.OUTPUT:
        return "no block before it runs"
    return f"no check reads {block.mode.value} blocks"


def marks(blocks: Iterable[Block], root: Path) -> dict[tuple[str, int], Mark]:
    """The mark of every block, by (page, index)."""
    return Marks(root).of_blocks(blocks)
