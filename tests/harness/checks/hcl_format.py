"""Check: Terraform/OpenTofu files parse, and are laid out as HCL lays them out.

Every ``*.tf`` file of the tree and every ``hcl`` block (``terraform``,
``tf``) goes through ``hclfmt``, the formatter of HashiCorp's own HCL module
(``github.com/hashicorp/hcl/v2``, the parser Terraform reads its files with),
built from source at the version ``versions.yaml`` pins. A syntax error
fails at the line HCL names; a file that parses but is not laid out as the
formatter lays it out (the whitespace rules ``terraform fmt`` applies as
well) fails at its first line that would change.

That is all that can be checked of HCL here. Whether the blocks and
arguments are the ones the providers take, and in which order an apply
creates things, needs ``terraform validate`` or a plan with the providers'
schemas, and the Go module proxy this project builds through refuses the
``fluxcd/flux`` provider; applying needs a cluster and a git host.
``docs/design/installing-flux.md`` says so where it shows the file.
"""

from __future__ import annotations

import difflib
import re
import subprocess
import tempfile
from pathlib import Path

from harness import build_cache, scratch, selection, tools
from harness.checks import yaml_docs
from harness.model import Block, Context, Finding, Location, Origin, Outcome

CHECK = "hcl"
TOOL = "hclfmt"
# A syntax check with HCL's parser (-check), and the formatted text, failing
# when it differs (-require-no-change).
ARGS = ("-check", "-require-no-change")
SUFFIXES = (".tf", ".tofu")
# One diagnostic of hclfmt: "Error: SUMMARY", a blank line, "  on FILE line N:",
# an excerpt of the source, then the detail.
DIAGNOSTIC = re.compile(r"^(?P<severity>Error|Warning): (?P<summary>.*)$", re.M)
WHERE = re.compile(r"^\s+on .* line (?P<line>\d+)(?:, in [^:]*)?:$", re.M)


def tree_files(root: Path) -> list[str]:
    """The tree's HCL files, relative to ``root``."""
    return sorted(name for name in scratch.tree_files(root)
                  if name.split("/", 1)[0] in yaml_docs.TREE_DIRS and name.endswith(SUFFIXES)
                  and (Path(root) / name).is_file())


def run(ctx: Context) -> list[Finding]:
    blocks = selection.select(CHECK, ctx.blocks)
    files = [] if ctx.only_page else tree_files(ctx.root)
    binary = tools.find(TOOL)
    if binary is None:
        reason = tools.missing_reason(TOOL)
        return ([Finding(CHECK, Outcome.SKIPPED, b.location(0), reason, b) for b in blocks]
                + [Finding(CHECK, Outcome.SKIPPED, Origin(name, 1), reason) for name in files])
    findings: list[Finding] = []
    for name in files:
        problems = check_text(binary, (Path(ctx.root) / name).read_text(encoding="utf-8"), Path(name).name)
        findings += [Finding(CHECK, Outcome.FAILED, Origin(name, line), f"{message}; {fix(name)}")
                     for line, message in problems]
        if not problems:
            findings.append(Finding(CHECK, Outcome.PASSED, Origin(name, 1), "parses and is formatted"))
    for block in blocks:
        problems = check_text(binary, block.text + "\n", "block.tf")
        findings += [block_finding(block, line, message) for line, message in problems]
        if not problems:
            findings.append(Finding(CHECK, Outcome.PASSED, block.location(0), "parses and is formatted", block))
    return findings


def fix(name: str) -> str:
    return f"fix it in {name} (`hclfmt -w {name}` or `terraform fmt` lays it out)"


def block_finding(block: Block, line: int, message: str) -> Finding:
    where: Location = block.location(line - 1)
    source = where.source.path if where.source is not None and where.source.path != block.page else None
    return Finding(CHECK, Outcome.FAILED, where, f"{message}; {fix(source) if source else 'fix the block'}", block)


def check_text(binary: str, text: str, name: str) -> list[tuple[int, str]]:
    """(1-based line, message) for each problem hclfmt finds in ``text``."""
    answer = hclfmt(binary, text, name)
    problems = []
    for chunk in split_diagnostics(answer["stderr"]):
        heading = DIAGNOSTIC.match(chunk)
        where = WHERE.search(chunk)
        detail = " ".join(line.strip() for line in chunk.split("\n")[1:]
                          if line.strip() and not line.startswith(" ") and not WHERE.match(line))
        problems.append((int(where.group("line")) if where else 1,
                         f"HCL {heading.group('severity').lower()}: {heading.group('summary')}"
                         + (f" ({detail})" if detail else "")))
    if problems or answer["returncode"] == 0:
        return problems
    old, new = text.split("\n"), answer["stdout"].split("\n")
    for tag, i1, _i2, j1, _j2 in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        was = old[i1].strip() if i1 < len(old) else "(end of file)"
        becomes = new[j1].strip() if j1 < len(new) else "(nothing)"
        return [(min(i1 + 1, len(old)), f"not laid out as HCL's formatter lays it out: `{was}` would be "
                                        f"`{becomes}`")]
    return [(1, f"hclfmt failed (exit {answer['returncode']}): {answer['stderr'].strip()}")]


def split_diagnostics(stderr: str) -> list[str]:
    starts = [m.start() for m in DIAGNOSTIC.finditer(stderr)]
    return [stderr[a:b].strip("\n") for a, b in zip(starts, starts[1:] + [len(stderr)])]


def hclfmt(binary: str, text: str, name: str) -> dict:
    """hclfmt's answer for ``text`` (its exit code, the formatted text and the
    diagnostics), kept in the build cache: it depends on the binary and the
    text alone. The file it reads is called ``name`` in a temporary folder,
    whose path is taken out of the diagnostics."""
    key = build_cache.key(TOOL, binary, [("args", "\0".join(ARGS).encode()), ("name", name.encode()),
                                          ("text", text.encode())])
    answer = build_cache.get(TOOL, key)
    if answer is None:
        with tempfile.TemporaryDirectory(prefix="docs-test-hcl-") as tmp:
            path = Path(tmp) / name
            path.write_text(text, encoding="utf-8")
            proc = subprocess.run([binary, *ARGS, str(path)], capture_output=True, text=True, timeout=60)
            answer = {"returncode": proc.returncode, "stdout": proc.stdout,
                      "stderr": proc.stderr.replace(str(path), name)}
        build_cache.put(TOOL, key, answer)
    return answer
