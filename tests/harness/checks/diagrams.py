"""Every mermaid block parses with the real mermaid parser.

The site draws each ```` ```mermaid ```` fence in the browser with mermaid.js;
a diagram mermaid cannot parse shows as an error box instead. This check
hands every mermaid block to ``tests/harness/diagrams/parse.mjs`` in one node
process (JSON in, JSON out) and maps each parse error back to the page line
(and tree file line, for an included diagram) mermaid points at.

The node packages (mermaid, the DOM it needs, and the browser driver of
``nox -s docs-screenshots``) are pinned in ``tests/harness/diagrams/package.json``
and its ``package-lock.json``, and installed with ``npm ci`` into
``.tools/diagrams/`` by ``ensure()`` (``python -m harness.checks.diagrams``,
which ``nox -s docs-test`` runs first). Without node, or without the
installed packages, every mermaid block is reported as skipped with the
reason, never passed.
"""

from __future__ import annotations

import filecmp
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from harness import build_cache, selection
from harness.model import PROJECT_ROOT, Block, Context, Finding, Outcome

CHECK = "diagrams"
LANG = "mermaid"
SOURCE_DIR = "tests/harness/diagrams"  # package.json, package-lock.json, parse.mjs
INSTALL_DIR = ".tools/diagrams"  # git-ignored; `npm ci` installs node_modules here
PINS = ("package.json", "package-lock.json")
PARSER = "parse.mjs"
TIMEOUT = 120


def source_dir(root: Path = PROJECT_ROOT) -> Path:
    return Path(root) / SOURCE_DIR


def install_dir(root: Path = PROJECT_ROOT) -> Path:
    return Path(root) / INSTALL_DIR


def node_modules(root: Path = PROJECT_ROOT) -> Path:
    return install_dir(root) / "node_modules"


def _installed(root: Path) -> bool:
    """The packages in .tools/diagrams were installed from the lockfile that is
    in the tree now."""
    target = install_dir(root)
    marker = node_modules(root) / ".package-lock.json"  # written by npm ci when it completes
    return marker.is_file() and all(
        (target / name).is_file() and filecmp.cmp(source_dir(root) / name, target / name, shallow=False)
        for name in PINS
    )


def missing_reason(root: Path = PROJECT_ROOT) -> str | None:
    """Why the diagrams cannot be parsed now (None when they can)."""
    if shutil.which("node") is None:
        return "node not found in PATH (missing tool): install Node.js 20 or newer to parse the diagrams"
    if not _installed(root):
        return (
            f"mermaid not installed in {INSTALL_DIR} (missing tool) or older than "
            f"{SOURCE_DIR}/package-lock.json: run `nox -s docs-test` (or "
            "`PYTHONPATH=tests python -m harness.checks.diagrams`) to install it with npm ci"
        )
    return None


def ensure(root: Path = PROJECT_ROOT) -> str | None:
    """Install the pinned node packages into .tools/diagrams with ``npm ci``
    unless they are there already. Returns None when they are ready, else why
    not (one line, ready to be a skip reason)."""
    if shutil.which("node") is None:
        return missing_reason(root)
    if _installed(root):
        return None
    npm = shutil.which("npm")
    if npm is None:
        return "npm not found in PATH (missing tool): it installs the pinned mermaid with npm ci"
    target = install_dir(root)
    target.mkdir(parents=True, exist_ok=True)
    for name in PINS:
        shutil.copyfile(source_dir(root) / name, target / name)
    try:
        proc = subprocess.run(
            [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
            cwd=target, capture_output=True, text=True, timeout=600,
        )
    except subprocess.TimeoutExpired:
        return f"`npm ci` in {INSTALL_DIR} did not finish in 600 s (missing tool: mermaid not installed)"
    if proc.returncode != 0:
        tail = " ".join((proc.stderr or proc.stdout).split())[-400:]
        return f"`npm ci` in {INSTALL_DIR} failed, mermaid not installed (missing tool): {tail}"
    return None if _installed(root) else f"`npm ci` ran but {INSTALL_DIR} is incomplete (mermaid not installed)"


def parse(texts: dict[str, str], root: Path = PROJECT_ROOT) -> tuple[str, dict[str, dict]]:
    """Parse diagrams ``{id: text}`` in one node process; returns mermaid's
    version and ``{id: {"ok", "type", "line", "message"}}``."""
    payload = json.dumps({"diagrams": [{"id": key, "text": text} for key, text in texts.items()]})
    # The answer depends on node, the parser script, the installed packages
    # (their lockfile) and the diagrams: kept on disk under those.
    node = shutil.which("node") or "node"
    parts = [(name, (source_dir(root) / name).read_bytes()) for name in (PARSER, "package-lock.json")]
    name = build_cache.key("mermaid", node, [*parts, ("payload", payload.encode())])
    answer = build_cache.get("mermaid", name)
    if answer is None:
        proc = subprocess.run(
            [node, str(source_dir(root) / PARSER), str(node_modules(root))],
            input=payload, capture_output=True, text=True, timeout=TIMEOUT,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{SOURCE_DIR}/{PARSER} failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
        answer = json.loads(proc.stdout)
        build_cache.put("mermaid", name, answer)
    return answer["mermaid"], {r["id"]: r for r in answer["results"]}


JISON_HEAD = re.compile(r"^Parse error on line \d+:\s*\n(?P<context>.*)\n-*\^\s*\n", re.M)
LANGIUM_LINE = re.compile(r"\bon line \d+, column (\d+)")


def describe(message: str) -> str:
    """Mermaid's message on one line, without its own line number (which
    counts lines after mermaid strips comments and front matter)."""
    head = JISON_HEAD.match(message)
    if head:
        message = f"{message[head.end():]} (after {head.group('context').strip()!r})"
    message = LANGIUM_LINE.sub(r"at column \1", message)
    return " ".join(message.split())


def checked(ctx: Context) -> list[Block]:
    """The mermaid blocks (harness.selection)."""
    return selection.select(CHECK, ctx.blocks)


def run(ctx: Context) -> list[Finding]:
    blocks = checked(ctx)
    if not blocks:
        return []
    reason = missing_reason(PROJECT_ROOT)
    if reason is not None:
        return [Finding(CHECK, Outcome.SKIPPED, b.location(0), reason, b) for b in blocks]
    findings: list[Finding] = []
    # (A block whose include did not resolve is not selected: the snippets
    # failure is its only finding.)
    texts: dict[str, Block] = {f"{block.page}#{block.index}": block for block in blocks}
    version, results = parse({key: b.text for key, b in texts.items()})
    for key, block in texts.items():
        result = results[key]
        if result["ok"]:
            findings.append(Finding(CHECK, Outcome.PASSED, block.location(0), "", block))
            continue
        line = result["line"]
        where = block.location(line - 1 if line else 0)
        findings.append(Finding(
            CHECK, Outcome.FAILED, where,
            f"mermaid {version} cannot parse this diagram: {describe(result['message'])}. "
            "The site shows an error box instead; fix the diagram (syntax: https://mermaid.js.org/intro/syntax-reference.html)",
            block,
        ))
    return findings


def main() -> int:
    """Install the pinned node packages unless they are there; print where."""
    reason = ensure(PROJECT_ROOT)
    if reason is None:
        print(f"{'mermaid':12} {node_modules(PROJECT_ROOT)}")
        return 0
    print(f"{'mermaid':12} MISSING: {reason}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
