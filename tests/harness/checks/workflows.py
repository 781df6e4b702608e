"""Check: the repository's GitHub Actions workflows.

- ``actionlint``: every workflow file (``.github/workflows/*.yaml``/``.yml``)
  and every block marked ``<!-- test: workflow -->`` passes actionlint, built
  from ``rhysd/actionlint`` at the version ``versions.yaml`` pins: the
  workflow syntax, expressions and their types, job and step references,
  the inputs of well-known actions, and, through shellcheck (the one
  ``requirements.txt`` installs), every ``run:`` script. Nothing is sent
  anywhere: actionlint only reads the files.
- ``workflow-pins``: a step that installs the flux CLI
  (``fluxcd/flux2/action``) or cosign (``sigstore/cosign-installer``) names
  the version ``versions.yaml`` pins (``flux.version``, ``tools.cosign``),
  so that CI releases with the tools the tests run. (A workflow cannot read
  versions.yaml before it has the tools; the check keeps the two in step.)

What no offline check can show is that GitHub runs the workflow and that
Sigstore issues its certificate; the release script's own tests and the
cluster tier cover what the workflow runs (``snippets/platform-release.sh``).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

from harness import build_cache, scratch, selection, tools
from harness.checks import shellcheck as shellcheck_check
from harness.checks import yaml_docs
from harness.model import PROJECT_ROOT, Block, Context, Finding, Location, Origin, Outcome
from toolchain import pins as toolchain_pins

CHECK = "actionlint"
PINS = "workflow-pins"
TOOL = "actionlint"
WORKFLOW_DIR = ".github/workflows/"
# The actions that install a pinned tool: action (without @ref) -> (the input
# that names the version, the versions.yaml path of the pin).
INSTALLERS = {
    "fluxcd/flux2/action": ("version", ("flux", "version")),
    "sigstore/cosign-installer": ("cosign-release", ("tools", "cosign", "version")),
}


def workflow_files(root: Path) -> list[str]:
    return sorted(name for name in scratch.tree_files(root)
                  if name.startswith(WORKFLOW_DIR) and name.endswith((".yaml", ".yml"))
                  and (Path(root) / name).is_file())


def run(ctx: Context) -> list[Finding]:
    blocks = selection.select(CHECK, ctx.blocks)
    files = [] if ctx.only_page else workflow_files(ctx.root)
    findings = pins(ctx.root, files, blocks)
    binary = tools.find(TOOL)
    if binary is None:
        reason = tools.missing_reason(TOOL)
        return findings + [Finding(CHECK, Outcome.SKIPPED, b.location(0), reason, b) for b in blocks] + [
            Finding(CHECK, Outcome.SKIPPED, Origin(name, 1), reason) for name in files]
    texts = {name: (Path(ctx.root) / name).read_text(encoding="utf-8") for name in files}
    texts.update({block_name(i): b.text + "\n" for i, b in enumerate(blocks)})
    errors = actionlint(binary, texts)
    for name in files:
        found = errors.get(name, [])
        findings += [Finding(CHECK, Outcome.FAILED, Origin(name, e["line"]), describe(e)) for e in found]
        if not found:
            findings.append(Finding(CHECK, Outcome.PASSED, Origin(name, 1), "actionlint reports nothing"))
    for index, block in enumerate(blocks):
        found = errors.get(block_name(index), [])
        findings += [Finding(CHECK, Outcome.FAILED, block.location(e["line"] - 1), describe(e), block)
                     for e in found]
        if not found:
            findings.append(Finding(CHECK, Outcome.PASSED, block.location(0), "actionlint reports nothing", block))
    return findings


def block_name(index: int) -> str:
    return f"{WORKFLOW_DIR}page-block-{index:04d}.yaml"


def describe(error: dict) -> str:
    return (f"{error['message']} [{error.get('kind', 'actionlint')}, column {error.get('column', '?')}]; "
            f"fix the workflow (actionlint's rules: https://github.com/rhysd/actionlint/blob/main/docs/checks.md)")


def actionlint(binary: str, texts: dict[str, str]) -> dict[str, list[dict]]:
    """actionlint's errors for each workflow (name -> text), by name. The
    files are linted together in a scratch folder laid out as a repository
    (``.github/workflows/``), with the project's shellcheck and without
    pyflakes; the answer depends on the binaries and the texts alone, so it
    is kept in the build cache."""
    if not texts:
        return {}
    checker = shellcheck_check.shellcheck_binary() or ""
    options = [f"-shellcheck={checker}", "-pyflakes=", "-format={{json .}}", "-no-color"]
    parts = [("options", "\0".join(options).encode())]
    if checker:
        st = Path(checker).stat()
        parts.append(("shellcheck", f"{checker}\0{st.st_size}\0{st.st_mtime_ns}".encode()))
    parts += [(name, text.encode()) for name, text in sorted(texts.items())]
    key = build_cache.key(TOOL, binary, parts)
    answer = build_cache.get(TOOL, key)
    if answer is None:
        with tempfile.TemporaryDirectory(prefix="docs-test-actionlint-") as tmp:
            for name, text in texts.items():
                path = Path(tmp) / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
            proc = subprocess.run([binary, *options, *sorted(texts)], cwd=tmp, capture_output=True, text=True,
                                  timeout=120)
        if proc.returncode not in (0, 1):
            raise RuntimeError(f"actionlint failed to run (exit {proc.returncode}): {proc.stderr.strip()}")
        answer = {"errors": json.loads(proc.stdout or "[]") or []}
        build_cache.put(TOOL, key, answer)
    out: dict[str, list[dict]] = {}
    for error in answer["errors"]:
        out.setdefault(error["filepath"], []).append(error)
    return out


# -- workflow-pins -------------------------------------------------------------


def _pinned(path: tuple[str, ...]) -> str:
    value = toolchain_pins.versions(PROJECT_ROOT)
    for key in path:
        value = (value or {}).get(key)
    return str(value or "")


def _steps(data) -> list[tuple[int, dict]]:
    """(0-based line, step) of every step of every job."""
    out = []
    jobs = data.get("jobs") if isinstance(data, dict) else None
    for job in (jobs or {}).values():
        steps = job.get("steps") if isinstance(job, dict) else None
        for index, step in enumerate(steps or []):
            if isinstance(step, dict):
                lines = getattr(steps, "lines", None)
                out.append((lines[index] if lines else 0, step))
    return out


def pins(root: Path, files: list[str], blocks: list[Block]) -> list[Finding]:
    """A step installing a pinned tool names the version versions.yaml pins."""
    sources: list[tuple[str, object]] = [(name, None) for name in files] + [("", b) for b in blocks]
    findings: list[Finding] = []
    for name, block in sources:
        text = block.text if block is not None else (Path(root) / name).read_text(encoding="utf-8")
        docs, error = yaml_docs.parse(text)
        if error is not None or not docs:
            continue  # actionlint reports what does not parse

        def where(line0: int) -> Location | Origin:
            return block.location(line0) if block is not None else Origin(name, line0 + 1)

        for line0, step in _steps(docs[0].data):
            uses = str(step.get("uses") or "")
            action = uses.split("@", 1)[0]
            if action not in INSTALLERS:
                continue
            field, path = INSTALLERS[action]
            wanted = _pinned(path)
            given = str((step.get("with") or {}).get(field) or "")
            if given.lstrip("v") == wanted.lstrip("v") and given:
                findings.append(Finding(PINS, Outcome.PASSED, where(line0), f"{action} installs {given}", block))
                continue
            shown = f"`{field}: {given}`" if given else f"no `{field}` (the newest release, whatever it is)"
            findings.append(Finding(
                PINS, Outcome.FAILED, where(line0),
                f"{uses} installs {shown}, but versions.yaml {'.'.join(path)} pins {wanted}: set "
                f"`with.{field}: {wanted}` so CI releases with the version the tests run", block))
    return findings
