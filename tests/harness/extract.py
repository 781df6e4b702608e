"""Expand every page exactly as the site renders it and find its code blocks.

The pipeline is the site's own:

1. mkdocs loads ``mkdocs.yml``; the mkdocs-macros plugin renders the page
   through Jinja (its real ``on_config`` / ``on_page_markdown`` hooks);
2. the real ``pymdownx.snippets`` preprocessor, configured from the
   ``markdown_extensions`` entry of ``mkdocs.yml``, expands ``--8<--`` lines;
3. fences are found superfences-style, also when indented inside
   admonitions, tabs and list items.

Every output line keeps where it came from: the page line (through a diff of
the page source against the Jinja output) and, for included text, the tree file
and line. Includes are expanded one ``--8<--`` line at a time *through* the
preprocessor, so the text is what the site shows; the line map is computed
beside it and checked against that text.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yamlload

from harness import metadata
from harness.model import PROJECT_ROOT, Block, Finding, Location, Mode, Origin, Outcome

FENCE_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>.*?)[ \t]*$")
BRACE_INFO = re.compile(r"^\{\s*\.?(?P<lang>[\w+-]*)\s*(?P<attrs>.*?)\s*\}$")


@dataclass
class Line:
    text: str
    page_line: int  # line in the page source the reader should look at
    origin: Origin  # the file and line the text really comes from


@dataclass
class Site:
    """The mkdocs configuration, macros plugin and snippets preprocessor of
    one project root, loaded once."""

    root: Path
    config: object
    macros: object | None
    snippets: object
    docs_dir: Path
    problems: list[Finding] = field(default_factory=list)

    def rel(self, path: str | os.PathLike) -> str:
        return os.path.relpath(os.path.abspath(path), self.root)


def load_site(root: Path = PROJECT_ROOT) -> Site:
    """Load ``mkdocs.yml`` of ``root`` the way ``mkdocs build`` does.

    The configuration and the macros plugin are loaded once per project root
    and process while ``mkdocs.yml`` and ``versions.yaml`` stay as they are
    (every check that reads the pages asks for them); each call gets its own
    snippets preprocessor and list of problems."""
    root = Path(root).resolve()
    config, macros = _loaded_config(root, _config_stamp(root))
    return site_of(root, config, macros)


def site_of(root: Path, config, macros) -> Site:
    """A ``Site`` over a configuration already loaded: ``load_site``'s, or
    the one a site build runs with (its hooks read the pages' blocks as
    this module does, without loading ``mkdocs.yml`` again)."""
    import markdown
    from pymdownx.snippets import SnippetExtension

    root = Path(root).resolve()
    options = dict(config.mdx_configs.get("pymdownx.snippets", {}))
    # mkdocs resolves base_path against the working directory, which is the
    # project root when the site is built; make that independent of our cwd.
    base = options.get("base_path", ["."])
    base = [base] if isinstance(base, (str, os.PathLike)) else base
    options["base_path"] = [str((root / b).resolve()) for b in base]
    md = markdown.Markdown(extensions=[SnippetExtension(**options)])
    snippets = md.preprocessors["snippet"]
    snippets.seen, snippets.bases, snippets.failed = set(), None, set()
    return Site(root, config, macros, snippets, Path(config.docs_dir).resolve())


CONFIG_FILES = ("mkdocs.yml", "versions.yaml")


def _config_stamp(root: Path) -> tuple:
    stamps = []
    for name in CONFIG_FILES:
        try:
            st = os.stat(root / name)
            stamps.append((name, st.st_mtime_ns, st.st_size))
        except FileNotFoundError:
            stamps.append((name, None, None))
    return tuple(stamps)


@functools.lru_cache(maxsize=32)
def _loaded_config(root: Path, _stamp: tuple):
    from mkdocs.config import load_config

    _git_information_once()
    _macros_yaml_with_libyaml()
    config = load_config(str(root / "mkdocs.yml"))
    macros = config.plugins.get("macros")
    if macros is not None:
        macros.on_config(config)
    return config, macros


def _git_information_once() -> None:
    """mkdocs-macros runs a dozen git commands for its ``git`` variable each
    time it loads; they run in the process's working directory and answer
    the same every time, so the harness lets them run once per directory."""
    import mkdocs_macros.context as macros_context

    if getattr(macros_context.get_git_info, "docs_test_once", False):
        return
    real, answers = macros_context.get_git_info, {}

    def get_git_info():
        cwd = os.getcwd()
        if cwd not in answers:
            answers[cwd] = real()
        return dict(answers[cwd]) if isinstance(answers[cwd], dict) else answers[cwd]

    get_git_info.docs_test_once = True
    macros_context.get_git_info = get_git_info


def _macros_yaml_with_libyaml() -> None:
    """mkdocs-macros reads its ``include_yaml`` files (versions.yaml and
    reviewed.yaml) with PyYAML's pure-Python safe loader each time a
    configuration loads, and the harness loads one for every scratch project
    its own tests make. Where PyYAML has libyaml, the harness lets macros
    read them with libyaml's parser under the same safe constructors: the
    same data in a fraction of the time (``yamlload``)."""
    import types

    import mkdocs_macros.plugin as macros_plugin
    import yaml

    if getattr(macros_plugin.yaml, "docs_test_libyaml", False) or yamlload.Loader is yaml.SafeLoader:
        return
    faster = types.ModuleType("yaml")
    faster.__dict__.update(vars(yaml))
    faster.SafeLoader = yamlload.Loader
    faster.docs_test_libyaml = True
    macros_plugin.yaml = faster


def pages(site: Site) -> list[Path]:
    return sorted(p for p in site.docs_dir.rglob("*.md") if p.is_file())


# --- 1. Jinja (mkdocs-macros) -------------------------------------------------


def render_macros(site: Site, path: Path) -> tuple[list[str], list[int], MacroError | None]:
    """The page after mkdocs-macros, and for each line its page source line.
    Returns (lines, page_line_numbers, error); rendered once per page content
    (the extraction and the snippets check both read it)."""
    st = os.stat(path)
    key = (str(site.root), str(path), st.st_mtime_ns, st.st_size, _config_stamp(site.root))
    if key not in _rendered:
        if len(_rendered) > 256:
            _rendered.clear()
        _rendered[key] = _render_macros(site, path)
    lines, numbers, error = _rendered[key]
    return list(lines), list(numbers), error


_rendered: dict[tuple, tuple] = {}


def _render_macros(site: Site, path: Path) -> tuple[list[str], list[int], MacroError | None]:
    from mkdocs.structure.files import File
    from mkdocs.structure.pages import Page

    source = path.read_text(encoding="utf-8")
    if site.macros is None:
        lines = source.split("\n")
        return lines, list(range(1, len(lines) + 1)), None
    cfg = site.config
    file = File(str(path.relative_to(site.docs_dir)), str(site.docs_dir), cfg.site_dir, cfg.use_directory_urls)
    page = Page(None, file, cfg)
    error = None
    try:
        page.read_source(cfg)
        rendered = site.macros.on_page_markdown(page.markdown, page=page, config=cfg, files=None)
    except (SystemExit, Exception):  # noqa: BLE001 - any macro error is a finding
        # With on_error_fail the plugin logs Jinja's message and exits; render
        # the page's template again to have the exception itself.
        rendered, error = source, macro_error(site, page, source)
    lines = rendered.split("\n")
    return lines, map_lines(source.split("\n"), lines), error


@dataclass
class MacroError:
    line: int  # 1-based, in the page source
    message: str

    def __str__(self) -> str:
        return self.message


def macro_error(site: Site, page, source: str) -> MacroError:
    """Jinja's own message for a page mkdocs-macros cannot render, at the
    page line it names (a syntax error's line, or the template line that was
    being rendered when an undefined variable or a macro failed)."""
    import traceback

    import jinja2

    markdown = page.markdown or ""
    # The template is the page without its front matter: count those lines.
    offset = source[: len(source) - len(markdown)].count("\n") if markdown and source.endswith(markdown) else 0
    variables = dict(getattr(site.macros, "variables", {}) or {})
    variables.update(page.meta or {})
    try:
        site.macros.env.from_string(markdown).render(**variables)
    except jinja2.TemplateSyntaxError as exc:
        return MacroError(offset + (exc.lineno or 1),
                          f"Jinja cannot read the page: {exc.message}. Pages go through Jinja (mkdocs-macros) "
                          f"before Markdown: wrap literal {{{{ }}}} or {{% %}} in {{% raw %}}...{{% endraw %}}")
    except Exception as exc:  # noqa: BLE001 - undefined variables, failing macros
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == "<template>"]
        line = offset + (frames[-1].lineno if frames else 1)
        hint = (" (versions.yaml and the page's front matter define the variables; "
                "`{{ versions.flux.version }}` reads versions.yaml)") if isinstance(exc, jinja2.UndefinedError) else ""
        return MacroError(line, f"mkdocs-macros cannot render the page: {type(exc).__name__}: {exc}{hint}")
    return MacroError(offset + 1, "mkdocs-macros failed to render the page, but rendering it again worked; "
                                  "run `nox -s docs` for the plugin's message")


def map_lines(source: list[str], rendered: list[str]) -> list[int]:
    """For each rendered line, the 1-based source line it most likely came
    from (exact for unchanged lines, nearest for lines Jinja rewrote)."""
    numbers = [0] * len(rendered)
    matcher = difflib.SequenceMatcher(None, source, rendered, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        for k, j in enumerate(range(j1, j2)):
            if tag == "equal":
                numbers[j] = i1 + k + 1
            elif i2 > i1:
                numbers[j] = min(i1 + k, i2 - 1) + 1
            else:
                numbers[j] = max(i1, 1)
    return numbers


# --- 2. Snippets ----------------------------------------------------------------


def expand_snippets(site: Site, page: str, lines: list[str], numbers: list[int]) -> list[Line]:
    """Run each line through the real snippets preprocessor; lines it
    expands keep a map to the tree file lines they came from."""
    pp = site.snippets
    out: list[Line] = []
    i = 0
    while i < len(lines):
        text, number = lines[i], numbers[i]
        here = Origin(page, number)
        if "8<" not in text:
            out.append(Line(text, number, here))
            i += 1
            continue
        match = pp.RE_ALL_SNIPPETS.match(text)
        unit = [text]
        if match and not match.group("escape") and match.group("block_marker"):
            # block form: --8<-- / paths / --8<--
            j = i + 1
            while j < len(lines) and not (
                (m := pp.RE_ALL_SNIPPETS.match(lines[j])) and m.group("block_marker") and not m.group("escape")
            ):
                j += 1
            unit = lines[i : j + 1]
        try:
            pp.seen = set()
            expanded = pp.parse_snippets(list(unit))
        except Exception as exc:  # SnippetMissingError and file errors
            site.problems.append(
                Finding(
                    "snippets",
                    Outcome.FAILED,
                    Location(here),
                    f"include {text.strip()!r} fails: {exc}. Fix the path or section name, "
                    "or add the section markers to the tree file.",
                )
            )
            out.append(Line(text, number, here))
            i += len(unit)
            continue
        origins = trace(site, unit, [here], is_section=False, stack=()) if len(unit) == 1 else None
        if origins is None or len(origins) != len(expanded):
            origins = [here] * len(expanded)
        out.extend(Line(t, number, o) for t, o in zip(expanded, origins))
        i += len(unit)
    return out


def include_target(site: Site, line: str):
    """(target, resolved file) of an inline ``--8<-- "path"`` line, or None."""
    pp = site.snippets
    m = pp.RE_ALL_SNIPPETS.match(line)
    if not m or m.group("escape") or not m.group("inline_marker"):
        return None
    path = m.group("snippet")[1:-1].strip()
    if path.startswith(";"):
        return None
    target = pp.parse_snippet_target(path)
    if target is None:
        return None
    return target, pp.get_snippet_path(target["path"])


def trace(site: Site, lines: list[str], origins: list[Origin], is_section: bool, stack: tuple) -> list[Origin] | None:
    """The origins of what ``parse_snippets(lines)`` outputs, mirroring its
    decisions line by line. None when it cannot follow (block form inside a
    tree file); the caller then maps everything to the include line."""
    pp = site.snippets
    result: list[Origin] = []
    for line, origin in zip(lines, origins):
        m = pp.RE_ALL_SNIPPETS.match(line) if "8<" in line else None
        if m and m.group("escape"):
            result.append(origin)
            continue
        if m and m.group("block_marker"):
            return None  # block form: the caller maps it to the include lines
        if m and m.group("inline_marker"):
            found = include_target(site, line)
            if found is None or found[1] is None or found[1] in stack:
                continue
            target, snippet = found
            raw = pp.read_lines(snippet)
            selected = pp.select_snippet_lines(raw, target)
            rel = site.rel(snippet)
            numbers, p = [], 0
            for s in selected:
                while p < len(raw) and raw[p] is not s and raw[p] != s:
                    p += 1
                numbers.append(p + 1 if p < len(raw) else 0)
                p += 1
            sub = trace(
                site,
                selected,
                [Origin(rel, n) if n else origin for n in numbers],
                is_section=target["section"] is not None,
                stack=stack + (snippet,),
            )
            if sub is None:
                return None
            result.extend(sub)
            continue
        if not is_section and pp.match_section(line):
            continue  # section markers never render
        result.append(origin)
    return result


# --- 3. Fences --------------------------------------------------------------------


def parse_info(info: str) -> tuple[str, str]:
    brace = BRACE_INFO.match(info)
    if brace:
        return brace.group("lang"), brace.group("attrs")
    lang, _, attrs = info.partition(" ")
    return lang.strip(), attrs.strip()


def find_blocks(page: str, lines: list[Line]) -> list[Block]:
    texts = [ln.text for ln in lines]
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE_OPEN.match(texts[i])
        if not m or (m.group("fence")[0] == "`" and "`" in m.group("info")):
            i += 1
            continue
        indent, fence = m.group("indent"), m.group("fence")
        lang, attrs = parse_info(m.group("info"))
        close = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        j = i + 1
        while j < len(lines) and not close.match(texts[j]):
            j += 1
        body = lines[i + 1 : j]
        width = len(indent.expandtabs(4))
        content = [_dedent(ln.text, width) for ln in body]
        comment = metadata.find_comment(texts, i)
        mode, options, errors = metadata.parse(comment[1] if comment else None, lang.lower())
        block = Block(
            page=page,
            index=len(blocks),
            lang=lang.lower(),
            attrs=attrs,
            text="\n".join(content),
            origins=[ln.origin for ln in body],
            fence=Origin(page, lines[i].page_line),
            mode=mode,
            options=options,
            included=list(dict.fromkeys(ln.origin.path for ln in body if ln.origin.path != page)),
            page_lines=[ln.page_line for ln in body],
            errors=errors,
        )
        if j >= len(lines):
            block.errors.append(f"fence {fence} opened here is never closed: add the closing {fence}")
        blocks.append(block)
        i = j + 1
    _check_output_pairs(blocks)
    return blocks


def _dedent(text: str, width: int) -> str:
    expanded = text.expandtabs(4)
    strip = len(expanded) - len(expanded.lstrip(" "))
    return expanded[min(width, strip) :]


def _check_output_pairs(blocks: list[Block]) -> None:
    for previous, block in zip([None, *blocks], blocks):
        if block.mode is Mode.OUTPUT and (previous is None or previous.mode not in (Mode.LOCAL, Mode.CLUSTER)):
            block.errors.append(
                "'test: output' must directly follow a 'test: local' or 'test: cluster' block "
                "(the block whose output it shows)"
            )


# --- public API -----------------------------------------------------------------------


def expand_page(site: Site, path: Path) -> list[Line]:
    """One page as the site renders it, before Markdown: lines with origins."""
    page = site.rel(path)
    lines, numbers, error = render_macros(site, path)
    if error:
        line = error.line if isinstance(error, MacroError) else 1
        site.problems.append(Finding("macros", Outcome.FAILED, Location(Origin(page, line)), str(error)))
    return expand_snippets(site, page, lines, numbers)


def rendered_blocks(site: Site, page: str, rendered: str, source: str | None = None) -> list[Block]:
    """The blocks of one page from its text after mkdocs-macros
    (``rendered``), as a site build has it in hand: snippets expanded, page
    lines mapped from the page's ``source`` (without it, the lines of
    ``rendered`` stand for them: the mapping is the costly part)."""
    lines = rendered.split("\n")
    numbers = map_lines(source.split("\n"), lines) if source is not None else list(range(1, len(lines) + 1))
    return find_blocks(page, expand_snippets(site, page, lines, numbers))


def collect(root: Path = PROJECT_ROOT, problems: list[Finding] | None = None, page: str | None = None) -> list[Block]:
    """Every fenced block of every page, expanded as the site renders it.

    ``problems`` (optional) receives FAILED findings for includes that do not
    resolve and macro errors; ``page`` limits the work to one page
    (``docs/x.md``)."""
    site = load_site(root)
    blocks: list[Block] = []
    for path in pages(site):
        rel = site.rel(path)
        if page is not None and rel != page:
            continue
        blocks.extend(find_blocks(rel, expand_page(site, path)))
    if problems is not None:
        problems.extend(site.problems)
    return blocks


UNRESOLVED = re.compile(r"^[ \t]*-+8<-+[ \t]+[\"']")


def unresolved_include(block: Block) -> int | None:
    """Offset of a ``--8<--`` line left in the block's text (its include did
    not resolve, which the snippets check reports), or None."""
    for offset, line in enumerate(block.text.split("\n")):
        if UNRESOLVED.match(line):
            return offset
    return None
