"""Run the blocks marked ``<!-- test: local -->`` and compare their output.

Each page gets its own scratch snapshot of the working tree (uncommitted
changes included, ``.git`` copied); its local blocks run there in page order,
each as ``bash -euo pipefail`` with a temporary ``HOME``, no ``KUBECONFIG``
(nor any other way to find a cluster) and a timeout, after which the whole
process group is killed. A ``<!-- test: output -->`` block right after a
local block is what that block must print (see ``harness.transcript``).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness import scratch, selection, tools, transcript
from harness.model import Block, Context, Finding, Location, Outcome

DEFAULT_TIMEOUT = 60
# Variables that could lead a tool to a real cluster or to the user's config.
DROPPED_ENV = ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "FLUX_SYSTEM_NAMESPACE")
TRAP = "set -E; trap 'echo \"docs-test: command failed at line $((LINENO - 1))\" >&2' ERR"
FAILED_AT = re.compile(r"^docs-test: command failed at line (?P<line>\d+)$", re.M)
BASH_LINE = re.compile(r"^(?P<file>[^:\n]+): line (?P<line>\d+): (?P<msg>.*)$", re.M)


def environment(root: Path, home: Path) -> dict[str, str]:
    """A clean environment: PATH (project tools first), a temporary HOME,
    fixed git identity; nothing that points at a cluster."""
    path = os.pathsep.join(
        [*tools.bin_dirs(root), str(root / ".tools" / "bin"), str(Path(sys.executable).parent),
         os.environ.get("PATH", "/usr/bin:/bin")]
    )
    env = {
        "PATH": path,
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TERM": "dumb",
        "NO_COLOR": "1",
        "TMPDIR": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "docs-test",
        "GIT_AUTHOR_EMAIL": "docs-test@example.org",
        "GIT_COMMITTER_NAME": "docs-test",
        "GIT_COMMITTER_EMAIL": "docs-test@example.org",
    }
    for name in DROPPED_ENV:
        env.pop(name, None)
    return env


def execute(script: str, cwd: Path, env: dict[str, str], timeout: float, script_path: Path):
    """Run ``script`` with bash -euo pipefail; returns (exit code or None on
    timeout, combined output)."""
    # The first line reports the line of a failing command (set -e exits
    # silently); it shifts the block's lines by one, which callers undo.
    script_path.write_text(TRAP + "\n" + script + "\n", encoding="utf-8")
    proc = subprocess.Popen(
        ["bash", "-euo", "pipefail", str(script_path)],
        cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return None, out.decode("utf-8", "replace")


def run(ctx: Context, default_timeout: float = DEFAULT_TIMEOUT) -> list[Finding]:
    """Every local block, each with its mark's ``timeout=SECONDS`` or else
    ``default_timeout`` (a fraction of a second too, for the harness's own
    tests)."""
    # The local blocks (harness.selection: not one whose include did not
    # resolve, whose snippets failure is its only finding, nor one whose
    # metadata comment is invalid, which the metadata check fails), by page.
    by_page: dict[str, list[Block]] = {}
    for block in ctx.blocks:
        by_page.setdefault(block.page, []).append(block)
    local = {(b.page, b.index) for b in selection.select("local", ctx.blocks)}
    pages = [blocks for blocks in by_page.values() if any((b.page, b.index) in local for b in blocks)]
    # Pages are independent (one snapshot each) and mostly wait on
    # subprocesses: run two at a time.
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda blocks: run_page(ctx, blocks, default_timeout), pages))
    return [finding for page in results for finding in page]


def run_page(ctx: Context, blocks: list[Block], default_timeout: float) -> list[Finding]:
    findings: list[Finding] = []
    with tempfile.TemporaryDirectory(prefix="docs-test-local-") as tmp:
        tree = scratch.snapshot(ctx.root, Path(tmp) / "tree")
        home = Path(tmp) / "home"
        home.mkdir()
        env = environment(ctx.root, home)
        for block in blocks:
            if selection.applies("local", block):
                findings.extend(run_block(block, blocks, tree, env, Path(tmp), default_timeout))
    return findings


def run_block(block: Block, page_blocks: list[Block], tree: Path, env, tmp: Path, default_timeout: float):
    """Run one local block, and compare the output block after it, when
    there is one (``harness.selection``: an ``output`` block right after)."""
    expected = next((b for b in page_blocks if b.index == block.index + 1 and selection.applies("output", b, block)),
                    None)
    timeout = int(block.options["timeout"]) if "timeout" in block.options else default_timeout
    script_path = tmp / f"block-{block.index}.sh"
    code, output = execute(block.text, tree, env, timeout, script_path)
    findings: list[Finding] = []
    if code is None:
        findings.append(Finding(
            "local", Outcome.FAILED, block.location(0),
            f"still running after {timeout:g}s and was killed (with its process group): make the block finish "
            f"without input or a cluster, or raise its limit with 'timeout=SECONDS' in the metadata comment."
            + tail(output),
            block,
        ))
    elif code == 127 and (tool := missing_tool(output)):
        findings.append(Finding("local", Outcome.SKIPPED, block.location(0), tool, block))
    elif code != 0:
        where = block.location(0)
        for m in BASH_LINE.finditer(output):
            if m.group("file") == str(script_path):
                where = block.location(int(m.group("line")) - 2)
        for m in FAILED_AT.finditer(output):
            where = block.location(int(m.group("line")) - 1)
        findings.append(Finding(
            "local", Outcome.FAILED, where,
            f"exited with status {code} (bash -euo pipefail in a scratch copy of the tree, HOME empty, "
            f"no KUBECONFIG)." + tail(output.replace(str(script_path), "block").replace(str(tree), ".")),
            block,
        ))
    else:
        findings.append(Finding("local", Outcome.PASSED, block.location(0), "", block))
    if expected is not None:
        if findings[0].outcome is Outcome.SKIPPED:
            findings.append(Finding("output", Outcome.SKIPPED, expected.location(0),
                                    f"the block it shows was skipped: {findings[0].message}", expected))
        elif code is None or code != 0:
            findings.append(Finding("output", Outcome.SKIPPED, expected.location(0),
                                    "the block it shows failed (see [local])", expected))
        else:
            findings.append(transcript.compare(expected, FAILED_AT.sub("", output).replace(str(tree), ".")))
    return findings


NOT_FOUND = re.compile(r": line \d+: (?P<name>[\w.-]+): command not found")


def missing_tool(output: str) -> str | None:
    """The skip reason when the block failed only because a pinned CLI tool
    is not installed (bash exit 127), else None."""
    from harness import tools

    m = NOT_FOUND.search(output)
    if m and (m.group("name") in tools.pins() or m.group("name") == "kubectl"):
        return tools.missing_reason(m.group("name"))
    return None


def tail(output: str, lines: int = 12) -> str:
    kept = output.rstrip().splitlines()[-lines:]
    return ("\n      output (last lines):\n        " + "\n        ".join(kept)) if kept else " (no output)"
