"""Snippet integrity.

- every ``--8<--`` line of every page resolves through the real snippets
  preprocessor (missing file or section: FAILED at page:line);
- every ``[start:x]`` marker in the tree has its ``[end:x]`` and the other way
  round (FAILED at tree file:line);
- sections no page includes are reported (WARNING: they do not fail the run,
  but are either dead text or a page that forgot to quote them).

Markers are looked for in every tree file except Markdown (pages and READMEs
show markers as examples) and the harness's own tests/.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from harness import extract, scratch
from harness.model import Block, Context, Finding, Location, Origin, Outcome

NOT_SCANNED_DIRS = ("tests/", "docs/")
NOT_SCANNED_SUFFIXES = (".md", ".png", ".jpg", ".svg", ".ico", ".gz", ".tgz", ".zip")


def run(ctx: Context) -> list[Finding]:
    site = extract.load_site(ctx.root)
    findings = [p for p in ctx.problems if p.check == "macros"]
    used: dict[str, set[str | None]] = defaultdict(set)  # tree file -> sections used (None: whole file)
    for path in extract.pages(site):
        page = site.rel(path)
        if ctx.only_page and page != ctx.only_page:
            continue
        lines, numbers, _ = extract.render_macros(site, path)
        for text, number in zip(lines, numbers):
            if "8<" in text:
                findings.extend(check_include(site, ctx.blocks, page, text, number, used))
    if not ctx.only_page:
        findings.extend(check_markers(site, ctx.root, used))
    else:
        findings.append(
            Finding("snippets", Outcome.SKIPPED, Origin("tree", 0),
                    f"unused-section and marker checks cover the whole tree; skipped with --page {ctx.only_page}")
        )
    return findings


def block_at(blocks: list[Block], page: str, line: int) -> Block | None:
    """The block whose fence encloses page line ``line``."""
    for block in blocks:
        if block.page == page and block.page_lines and block.fence.line < line <= max(block.page_lines):
            return block
    return None


def check_include(site, blocks, page: str, text: str, number: int, used) -> list[Finding]:
    found = extract.include_target(site, text)
    if found is None:
        return []
    target, snippet = found
    where = Location(Origin(page, number))
    block = block_at(blocks, page, number)
    pp = site.snippets
    try:
        pp.seen = set()
        pp.parse_snippets([text])
    except Exception as exc:  # SnippetMissingError, unreadable file
        hint = (
            f"add '--8<-- [start:{target['section']}]' / '[end:{target['section']}]' markers to "
            f"{target['path']} or fix the section name"
            if snippet and target["section"]
            else "fix the path (relative to the project root) or restore the file"
        )
        return [Finding("snippets", Outcome.FAILED, where, f"{text.strip()} does not resolve: {exc}; {hint}", block)]
    rel = site.rel(snippet)
    used[rel].add(target["section"])
    _nested(site, snippet, target, used, (snippet,))
    return [Finding("snippets", Outcome.PASSED, Location(Origin(page, number), Origin(rel, 1)), text.strip(), block)]


def _nested(site, snippet: str, target, used, stack) -> None:
    """Record sections used by includes inside an included tree file."""
    pp = site.snippets
    for line in pp.select_snippet_lines(pp.read_lines(snippet), target):
        found = extract.include_target(site, line) if "8<" in line else None
        if found and found[1] and found[1] not in stack:
            used[site.rel(found[1])].add(found[0]["section"])
            _nested(site, found[1], found[0], used, stack + (found[1],))


def check_markers(site, root: Path, used) -> list[Finding]:
    findings: list[Finding] = []
    pp = site.snippets
    for name in scratch.tree_files(root):
        if name.startswith(NOT_SCANNED_DIRS) or name.endswith(NOT_SCANNED_SUFFIXES):
            continue
        try:
            text = (Path(root) / name).read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if "8<" not in text:
            continue
        open_at: dict[str, int] = {}
        sections: dict[str, int] = {}
        for number, line in enumerate(text.split("\n"), 1):
            m = pp.match_section(line)
            if not m or m.group("escape"):
                continue
            section, kind = m.group("name"), m.group("type").lower()
            if kind == "start":
                if section in open_at:
                    findings.append(_fail(name, number, f"second [start:{section}] before [end:{section}] "
                                          f"(first at line {open_at[section]}): remove one"))
                open_at.setdefault(section, number)
                sections.setdefault(section, number)
            elif section in open_at:
                del open_at[section]
            else:
                findings.append(_fail(name, number, f"[end:{section}] has no [start:{section}] above it: "
                                      "add the start marker or remove this one"))
        for section, number in open_at.items():
            findings.append(_fail(name, number, f"[start:{section}] is never closed: add "
                                  f"'--8<-- [end:{section}]' (as a comment) where the section ends"))
        for section, number in sections.items():
            if None in used.get(name, set()) or section in used.get(name, set()):
                continue
            findings.append(Finding(
                "snippets", Outcome.WARNING, Origin(name, number),
                f"section '{section}' is not included by any page: quote it with "
                f"--8<-- \"{name}:{section}\" or remove its markers",
            ))
    return findings


def _fail(name: str, number: int, message: str) -> Finding:
    return Finding("snippets", Outcome.FAILED, Origin(name, number), message)
