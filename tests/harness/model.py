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

    def location(self, offset: int = 0) -> Location:
        """The location of line ``offset`` (0-based) of the block's text."""
        if 0 <= offset < len(self.origins):
            origin = self.origins[offset]
            page_line = self.fence.line + 1 + offset if origin.path != self.page else origin.line
            return Location(Origin(self.page, page_line), origin)
        return Location(self.fence)


class Outcome(enum.Enum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass
class Finding:
    """The result of one check on one block or tree file."""

    check: str  # e.g. "schema", "kustomize-build", "shellcheck"
    outcome: Outcome
    where: Location | Origin
    message: str = ""  # what went wrong (or why skipped), and what to do
    block: Block | None = None

    def __str__(self) -> str:
        return f"{self.where}: [{self.check}] {self.message}"


PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Context:
    """What every check gets: the tree under test (read-only: checks never
    write into it), the blocks the pages render, and where the Flux schemas
    are (``--flux-schemas`` or ``$FLUX_SCHEMAS``; CI uses ../shared/flux/schemas)."""

    root: Path
    blocks: list[Block]
    flux_schemas: Path | None = None
