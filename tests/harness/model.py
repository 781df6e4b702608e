"""The data the harness passes between its stages.

extract -> classify -> check -> report:

- ``extract`` expands a page the way the site renders it and yields ``Block``
  objects, each line of which knows where it came from (``Origin``).
- ``classify`` reads the block's metadata comment into a ``Mode``.
- each check module turns blocks (or tree files) into ``Finding`` objects.
- ``report`` prints the findings and the per-page summary.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Origin:
    """Where one rendered line came from: a file (a page or a tree file) and a
    1-based line number in it."""

    path: str  # relative to the project root, e.g. "clusters/production/platform.yaml"
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True)
class Location:
    """A place to point a reader at: the page line, and, when the text was
    included with --8<--, the tree file line it came from.

    ``str(location)`` reads ``docs/promotion/platform.md:42 (clusters/production/platform.yaml:7)``.
    """

    page: Origin
    source: Origin | None = None

    def __str__(self) -> str:
        if self.source is None or self.source == self.page:
            return str(self.page)
        return f"{self.page} ({self.source})"


class Mode(enum.Enum):
    """How a block is tested, as its metadata comment says (or the default for
    its language)."""

    MANIFESTS = "manifests"  # YAML validated as Kubernetes/Flux objects
    LOCAL = "local"  # shell run locally in a scratch clone
    CLUSTER = "cluster"  # shell run against a cluster by the cluster tier
    OUTPUT = "output"  # console transcript: expected output of the block before it
    SKIP = "skip"  # not tested; needs a reason
    STATIC = "static"  # shell that is only linted (shellcheck, CLI help checks)
    TREE = "tree"  # a directory listing (├── name) checked against the repository
    WORKFLOW = "workflow"  # a GitHub Actions workflow (YAML): linted by actionlint, not validated as manifests
    HCL = "hcl"  # Terraform/OpenTofu HCL: parsed and format-checked by HCL's own formatter
    NONE = "none"  # a language the harness does not test (mermaid, text)


@dataclass
class Block:
    """One fenced code block as the site renders it."""

    page: str  # e.g. "docs/promotion/platform.md"
    index: int  # position among the page's blocks, from 0
    lang: str  # "yaml", "shell", "console", "mermaid", ... ("" when none)
    attrs: str  # the rest of the fence's info string (title="..." linenums="1")
    text: str  # the code, as rendered (snippets expanded)
    origins: list[Origin]  # one per line of ``text``
    fence: Origin  # the opening fence line in the page source
    mode: Mode = Mode.NONE
    options: dict[str, str] = field(default_factory=dict)  # from the metadata comment
    included: list[str] = field(default_factory=list)  # tree files the block includes
    # The page line each text line is shown from: the line itself, or the
    # ``--8<--`` line that included it. One per line of ``text`` (may be empty
    # for blocks built by hand; then the fence position is used).
    page_lines: list[int] = field(default_factory=list)
    # Problems with the block's metadata comment (unknown mode, skip without a
    # reason, ...); reported by the ``metadata`` check.
    errors: list[str] = field(default_factory=list)

    @property
    def lines(self) -> list[str]:
        return self.text.split("\n") if self.text else []

    def location(self, offset: int = 0) -> Location:
        """The location of line ``offset`` (0-based) of the block's text."""
        if 0 <= offset < len(self.origins):
            origin = self.origins[offset]
            if offset < len(self.page_lines):
                page_line = self.page_lines[offset]
            elif origin.path == self.page:
                page_line = origin.line
            else:
                page_line = self.fence.line + 1 + offset
            return Location(Origin(self.page, page_line), origin)
        return Location(self.fence)


class Outcome(enum.Enum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"  # the message says why (skip metadata, missing tool, ...)
    WARNING = "warning"  # reported, does not fail the run (e.g. a section no page uses)


@dataclass
class Finding:
    """The result of one check on one block or tree file."""

    check: str  # e.g. "schema", "kustomize-build", "shellcheck"
    outcome: Outcome
    where: Location | Origin
    message: str = ""  # what went wrong (or why skipped), and what to do
    block: Block | None = None
    # For a passing finding of a whole-tree check: the tree files it covered
    # (what a block's "checked by" mark may claim for them; harness.selection).
    covers: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.where}: [{self.check}] {self.message}"


PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Context:
    """What every check gets: the tree under test (read-only: checks never
    write into it), the blocks the pages render, and where the Flux schemas
    are (``--flux-schemas``, ``$FLUX_SCHEMAS``, or the tool cache's)."""

    root: Path
    blocks: list[Block]
    flux_schemas: Path | None = None
    # ``--page docs/x.md``: blocks are already limited to that page; checks of
    # the whole tree (scripts, unused sections, tree YAML) may skip themselves.
    only_page: str | None = None
    # Problems found while extracting (missing include, macro error), as
    # FAILED findings; the snippets check reports them.
    problems: list[Finding] = field(default_factory=list)
