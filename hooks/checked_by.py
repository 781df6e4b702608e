"""A small line under every code block of the site saying how the harness
checks it: the "checked by" mark.

The mark is not written on the pages: it is derived, at build time, from the
harness's own classification (``tests/harness/selection.py``), the same one
every check picks its blocks with. So a mark names a check only where that
check looks at the block; ``tests/test_marks.py`` holds every mark to the
findings of a run, and to what this hook put into the HTML.

- ``on_page_markdown`` reads the page's blocks from its text after
  mkdocs-macros, exactly as the harness does (``harness.extract``, with the
  snippets expanded by the build's own configuration), and works out each
  block's mark;
- ``on_page_content`` finds the rendered blocks in the page's HTML, in the
  same order (a highlighted ``div.highlight``, or a ``pre.mermaid``), and puts
  the mark right after each: an icon, a word (Checked, Not run, Not checked)
  and the checks, each a link to the section of the testing page that
  explains it. A page whose HTML has a different number of blocks than the
  harness found is a warning, so the strict build fails rather than mark the
  wrong block;
- the sections it links to must be headings of ``docs/testing.md``, and
  ``.ci/run`` must say which providers CI runs the cluster tier on; either
  mistake is a warning too.

Nothing here runs a check or a tool: it reads the pages and the tree.
"""

from __future__ import annotations

import html
import re
import sys
from pathlib import Path

from mkdocs.plugins import get_plugin_logger
from mkdocs.utils import get_relative_url

log = get_plugin_logger("checked_by")

STYLESHEET = "assets/stylesheets/checked-by.css"  # in docs/, copied like any asset
# Material's own icons (its Material Design set), inlined as Material's
# emoji extension inlines them.
ICONS = {"checked": "check-circle-outline", "skipped": "skip-next-circle-outline",
         "unchecked": "minus-circle-outline"}
LABELS = {"checked": "Checked", "skipped": "Not run", "unchecked": "Not checked"}

_state: dict = {}


def _harness(root: Path):
    """The harness's modules (tests/ is not a package on the build's path; it
    goes last on it, so that none of its names hides another module)."""
    tests = str(root / "tests")
    if tests not in sys.path:
        sys.path.append(tests)
    from harness import extract, selection

    return extract, selection


def on_config(config, **kwargs):
    root = Path(config.config_file_path).resolve().parent
    extract, selection = _harness(root)
    _state.clear()
    _state.update(root=root, extract=extract, selection=selection, marks={}, anchors=None,
                  marker=selection.Marks(root), icons={kind: _icon(name) for kind, name in ICONS.items()})
    try:
        selection.ci_providers(root)
    except selection.CIError as error:
        log.warning(str(error))
        _state["broken"] = True
    if STYLESHEET not in config.extra_css:
        config.extra_css.append(STYLESHEET)
    return config


def _icon(name: str) -> str:
    import material

    path = Path(material.__file__).parent / "templates" / ".icons" / "material" / f"{name}.svg"
    return path.read_text(encoding="utf-8").strip()


def _is_page_of_docs(page) -> bool:
    """A page of docs/ (the harness reads those), not one a hook generated."""
    return getattr(page.file, "generated_by", None) is None


def on_page_markdown(markdown, page, config, files, **kwargs):
    if "root" not in _state or _state.get("broken") or not _is_page_of_docs(page):
        return markdown
    extract, root = _state["extract"], _state["root"]
    site = _state.get("site")
    if site is None:
        site = _state["site"] = extract.site_of(root, config, config.plugins.get("macros"))
    rel = f"{Path(config.docs_dir).resolve().relative_to(root).as_posix()}/{page.file.src_uri}"
    # (The page lines of the blocks are not needed: a warning names the page.)
    blocks = extract.rendered_blocks(site, rel, markdown)
    marks = _state["marker"].of_blocks(blocks)
    _state["marks"][page.file.src_uri] = [marks[(b.page, b.index)] for b in blocks]
    return markdown


# The start and end tags that can open or close a rendered block. Code inside
# a block is escaped (``&lt;div``), so every match is a real tag.
TAG = re.compile(r"<(?P<end>/?)(?P<tag>div|pre)\b(?P<attrs>[^>]*)>")
CLASSES = re.compile(r"""(?:^|\s)class=(?:"(?P<dq>[^"]*)"|'(?P<sq>[^']*)')""")


class RenderedBlocks:
    """Where each rendered code block ends in a page's HTML (``ends``, in
    order): a top-level ``div`` with the class ``highlight``
    (pymdownx.highlight; one with line numbers holds divs of its own) or a
    ``pre.mermaid`` (the diagrams' custom fence)."""

    def __init__(self, text: str) -> None:
        self.ends: list[int] = []
        depth, open_at = 0, None  # open_at: (tag, depth) of the block being read
        for match in TAG.finditer(text):
            tag = match.group("tag")
            if not match.group("end"):
                depth += 1
                if open_at is None:
                    found = CLASSES.search(match.group("attrs"))
                    classes = (found.group("dq") or found.group("sq") or "").split() if found else []
                    if (tag == "div" and "highlight" in classes) or (tag == "pre" and "mermaid" in classes):
                        open_at = (tag, depth)
                continue
            if open_at == (tag, depth):
                self.ends.append(match.end())
                open_at = None
            depth -= 1


def on_page_content(html_text, page, config, files, **kwargs):
    selection = _state.get("selection")
    if selection is None:
        return html_text
    if page.file.src_uri == selection.TESTING_PAGE:
        _state["anchors"] = _anchors(page.toc)
    marks = _state["marks"].pop(page.file.src_uri, None)  # a page of docs/
    path = _tree_view_of(page) if marks is None else None
    if marks is None and path is None:
        return html_text
    ends = RenderedBlocks(html_text).ends
    where = f"docs/{page.file.src_uri}"
    if path is not None:
        # A tree file's view: the file, after the --help text a script's view shows first.
        marker, where = _state["marker"], f"the view of {path}"
        marks = ([marker.of_usage(path)] if len(ends) == 2 else []) + [marker.of_file(path)]
    if len(ends) != len(marks):
        log.warning(f"{where}: the harness finds {len(marks)} code blocks on the page but its HTML has "
                    f"{len(ends)}; the checked-by marks are left out of it rather than put under the wrong "
                    f"blocks (hooks/checked_by.py)")
        return html_text
    testing = files.get_file_from_path(selection.TESTING_PAGE) if files is not None else None
    base = get_relative_url(testing.url, page.url) if testing is not None else None
    out, last = [], 0
    for mark, end in zip(marks, ends):
        out.append(html_text[last:end])
        out.append(render(mark, base, _state["icons"]))
        last = end
    out.append(html_text[last:])
    return "".join(out)


TREE_VIEWS = "tree/"  # hooks/tree_views.py's pages: tree/PATH.md for the file PATH


def _tree_view_of(page) -> str | None:
    """The tree file a generated view shows, or None (a directory's view,
    another page)."""
    uri = page.file.src_uri
    if _is_page_of_docs(page) or not uri.startswith(TREE_VIEWS) or not uri.endswith(".md"):
        return None
    path = uri[len(TREE_VIEWS):-len(".md")]
    return path if (_state["root"] / path).is_file() else None


def _anchors(toc) -> set[str]:
    found = set()
    for item in toc or []:
        found.add(item.id)
        found |= _anchors(item.children)
    return found


def render(mark, base: str | None, icons: dict[str, str]) -> str:
    """One mark as HTML: ``<div class="checked-by">`` with an icon, the word
    that says what happened, and the checks (or the reason), each linking to
    the testing page's section about it (``base``: that page's URL, relative
    to this one; None leaves the links out)."""
    selection = _state["selection"]

    def link(words: str, section: str, cls: str = "") -> str:
        text = html.escape(words)
        if base is None:
            return f'<span class="{cls}">{text}</span>' if cls else text
        attr = f' class="{cls}"' if cls else ""
        return f'<a{attr} href="{html.escape(base)}#{section}">{text}</a>'

    if mark.claims:
        kind = "checked"
        items = [link(words, section) for words, section in mark.items()]
        items += [f'<span class="checked-by__note">{html.escape(note)}</span>' for note in mark.notes]
        body = '<ul class="checked-by__items">' + " ".join(f"<li>{item}</li>" for item in items) + "</ul>"
    elif mark.skipped is not None:
        kind, body = "skipped", f'<span class="checked-by__reason">{html.escape(mark.skipped)}</span>'
    else:
        kind, body = "unchecked", f'<span class="checked-by__reason">{html.escape(mark.unchecked or "")}</span>'
    section = {"checked": selection.THE_MARK, "skipped": selection.SKIPS, "unchecked": selection.UNCHECKED}[kind]
    label = link(LABELS[kind], section, "checked-by__label")
    checks = " ".join(mark.checks)
    return (f'<div class="checked-by checked-by--{kind}" data-checks="{html.escape(checks)}">'
            f'<span class="twemoji" aria-hidden="true">{icons[kind]}</span>{label}: {body}</div>')


def on_post_build(config, **kwargs):
    selection = _state.get("selection")
    if selection is None or _state.get("broken"):
        return
    anchors = _state.get("anchors")
    if anchors is None:
        log.warning(f"the checked-by marks link to {selection.TESTING_PAGE}, which this site does not build")
        return
    missing = [s for s in selection.SECTIONS if s not in anchors]
    if missing:
        log.warning(f"the checked-by marks link to sections {', '.join('#' + s for s in missing)} of "
                    f"docs/{selection.TESTING_PAGE}, which has no such heading (harness.selection names them)")
