"""A page on the site for every file of the tree, and links to it from the pages.

The pages name the tree's files all the time (`snippets/sandbox-clone.sh`,
`clusters/production/platform.yaml:13`). A link to a git host would be dead
while the repository has no public home, offline, and on a mirror; so the
site carries the tree itself:

- ``on_files`` adds a generated page for every file of the tree
  (``tree/PATH/``: the file, highlighted, with line numbers; for a script of
  ``snippets/``, first its ``--help`` text), and one for every directory
  (``tree/DIR/``: what it holds). ``tree/`` lists the top-level directories.
- ``on_page_content`` turns every inline code span on a page that is exactly
  a path of the tree (``clusters/development/``, ``snippets/lib.sh``, or
  ``clusters/staging/platform.yaml:25`` for one line) and every code block
  title that names a tree file into a link to that view.
- A code span that names a file in a directory of the tree which has no such
  file is a warning, so ``mkdocs build --strict`` fails on a page that names
  a file after it was renamed or removed. Paths in directories the tree does
  not have (``clusters/sandbox-a/...``, which a procedure creates) are left
  alone. A Markdown link to a view (``[x](/tree/snippets/lib.sh.md)``) is
  checked by MkDocs like any link.

The views are generated from the files on disk at build time, so they show
exactly the tree the site was built from.
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

from mkdocs.plugins import get_plugin_logger
from mkdocs.structure.files import File, InclusionLevel
from mkdocs.utils import get_relative_url
from pymdownx.snippets import SnippetPreprocessor

log = get_plugin_logger("tree_views")

# The tree the pages quote (tests/harness/checks/yaml_docs.py TREE_DIRS), and
# the files at the top that the pages name.
TREE_DIRS = ("clusters", "platform", "apps", "create", "snippets")
TOP_FILES = ("versions.yaml", "CONTRIBUTING.md", "mkdocs.yml")
PREFIX = "tree"
LANGUAGES = {".yaml": "yaml", ".yml": "yaml", ".sh": "bash", ".md": "markdown", ".json": "json",
             ".py": "python", ".toml": "toml"}
# The id pymdownx.highlight gives line N of the view's code block
# (anchor_linenums, in mkdocs.yml); blocks count from 0, the usage text first.
LINE_ANCHOR = "__codelineno-{block}-{line}"
# The usage text of a script: `cat <<'USAGE'` ... `USAGE` in its usage().
USAGE = re.compile(r"^\s*cat <<'USAGE'\n(?P<text>.*?)^USAGE$", re.M | re.S)
# What a tree path looks like in a code span: a top-level directory of the
# tree and a slash (a bare `platform` is as often the name of an object),
# then path characters, or a top-level file; then an optional :LINE.
NAMED = re.compile(
    r"^(?P<path>(?:%s)(?=/)(?:/[\w.@+-]+)*|%s)(?P<dir>/)?(?::(?P<line>\d+))?$"
    % ("|".join(re.escape(n) for n in TREE_DIRS), "|".join(re.escape(n) for n in TOP_FILES)))
# Inline code (no attributes, no markup inside) and code block titles; links,
# headings and code blocks are passed over whole.
CONTENT = re.compile(
    r"(?P<skip><a\b[^>]*>.*?</a>|<h[1-6]\b[^>]*>.*?</h[1-6]>|<pre\b.*?</pre>)"
    r"|<code>(?P<code>[^<]+)</code>"
    r'|<span class="filename">(?P<title>[^<]+)</span>',
    re.S,
)


def tree_paths(root: Path) -> tuple[list[str], list[str]]:
    """(files, directories) of the tree, relative to ``root``, sorted; hidden
    names and caches left out."""
    files, dirs = [], []
    for top in TREE_DIRS:
        base = root / top
        if not base.is_dir():
            continue
        dirs.append(top)
        for current, subdirs, names in os.walk(base):
            subdirs[:] = sorted(d for d in subdirs if not d.startswith(".") and d != "__pycache__")
            rel = Path(current).relative_to(root).as_posix()
            dirs.extend(f"{rel}/{d}" for d in subdirs)
            files.extend(f"{rel}/{n}" for n in sorted(names) if not n.startswith(".") and not n.endswith(".pyc"))
    files.extend(name for name in TOP_FILES if (root / name).is_file())
    return sorted(files), sorted(dirs)


def view_uri(path: str, is_dir: bool = False) -> str:
    """The generated page's source path: ``tree/snippets/lib.sh.md``,
    ``tree/platform/index.md``."""
    return f"{PREFIX}/{path}/index.md" if is_dir else f"{PREFIX}/{path}.md"


def fence(text: str) -> str:
    """A backtick fence longer than any run of backticks in ``text``."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def usage_text(source: str) -> str | None:
    """What the script's ``--help`` prints: the text of its usage heredoc."""
    match = USAGE.search(source)
    return match.group("text") if match else None


def script_usage(path: str, source: str) -> str | None:
    """The ``--help`` text of a script of snippets/ (None for other files)."""
    return usage_text(source) if path.startswith("snippets/") and path.endswith(".sh") else None


def escape_snippets(line: str) -> str:
    """A line as pymdownx.snippets leaves it alone: an include or block
    marker at the start, or a section marker anywhere (which the extension
    would expand or remove), gets the `;` the extension removes instead."""
    include = SnippetPreprocessor.RE_ALL_SNIPPETS.match(line)
    if include:
        return f"{include.group('space')};{line[len(include.group('space')):]}"
    section = SnippetPreprocessor.RE_SNIPPET_SECTION.match(line)
    if section:
        return f"{section.group('pre')};{line[len(section.group('pre')):]}"
    return line


def code_block(text: str, lang: str, options: str = "") -> str:
    text = "\n".join(escape_snippets(line) for line in text.rstrip("\n").split("\n"))
    marks = fence(text)
    return f"{marks} {lang}{options}\n{text}\n{marks}\n"


FRONT_MATTER = "---\nrender_macros: false\nsearch:\n  exclude: true\n---\n\n"


def crumbs(path: str, is_dir: bool = False) -> str:
    """Links from the view of ``path`` to the views of the directories above
    it. Links in a view are relative to its source, ``tree/<dir>/``."""
    ancestors = path.split("/")[:-1]
    depth = len(ancestors) + (1 if is_dir else 0)  # directories between tree/ and the view's source
    links = [f"[the tree]({'../' * depth}index.md)"]
    for n, name in enumerate(ancestors, 1):
        links.append(f"[`{name}/`]({'../' * (depth - n)}index.md)")
    return " / ".join(links)


def file_view(root: Path, path: str) -> str:
    source = (root / path).read_text(encoding="utf-8", errors="replace")
    lang = LANGUAGES.get(Path(path).suffix, "text")
    parts = [FRONT_MATTER, f"# `{path}`\n\n", f"In {crumbs(path)}.\n\n"]
    usage = script_usage(path, source)
    if usage is not None:
        parts.append(f"## Usage\n\nWhat `{Path(path).name} --help` prints:\n\n")
        parts.append(code_block(usage, "text"))
        parts.append("\n## Source\n\n")
    parts.append(code_block(source, lang, ' linenums="1"'))
    return "".join(parts)


def readme_title(root: Path, directory: str) -> str:
    """The first heading of the directory's README.md, without its path."""
    readme = root / directory / "README.md"
    if readme.is_file():
        for line in readme.read_text(encoding="utf-8").splitlines():
            if line.startswith("# "):
                return line[2:].split(": ", 1)[-1].strip()
    return ""


def directory_view(root: Path, directory: str, files: list[str], dirs: list[str]) -> str:
    children_dirs = [d for d in dirs if d.rpartition("/")[0] == directory]
    children_files = [f for f in files if f.rpartition("/")[0] == directory]
    lines = [FRONT_MATTER, f"# `{directory}/`\n\n", f"In {crumbs(directory, is_dir=True)}.\n\n"]
    title = readme_title(root, directory)
    if title:
        lines.append(f"{title[0].upper()}{title[1:]}.\n\n")
    for d in children_dirs:
        name = d.rpartition("/")[2]
        lines.append(f"- [`{name}/`]({name}/index.md)\n")
    for f in children_files:
        name = f.rpartition("/")[2]
        lines.append(f"- [`{name}`]({name}.md)\n")
    return "".join(lines)


def index_view(root: Path, files: list[str], dirs: list[str]) -> str:
    lines = [FRONT_MATTER, "# The repository's files\n\n",
             "Every file of the tree the pages quote, as this version of the site was built "
             "from it. The pages link here wherever they name a file.\n\n"]
    for top in (d for d in dirs if "/" not in d):
        title = readme_title(root, top)
        lines.append(f"- [`{top}/`]({top}/index.md){': ' + title if title else ''}\n")
    for name in (f for f in files if "/" not in f):
        lines.append(f"- [`{name}`]({name}.md)\n")
    return "".join(lines)


_tree: dict[str, object] = {}


def on_files(files, config, **kwargs):
    root = Path(config.config_file_path).resolve().parent
    tree_files, tree_dirs = tree_paths(root)
    _tree.update(root=root, files=set(tree_files), dirs=set(tree_dirs), with_usage={
        path for path in tree_files
        if script_usage(path, (root / path).read_text(encoding="utf-8", errors="replace"))})

    def add(uri: str, content: str, inclusion: InclusionLevel = InclusionLevel.NOT_IN_NAV) -> None:
        files.append(File.generated(config, uri, content=content, inclusion=inclusion))

    # The index is in the nav (mkdocs.yml); the views are reached from it and from the pages.
    add(f"{PREFIX}/index.md", index_view(root, tree_files, tree_dirs), InclusionLevel.UNDEFINED)
    for directory in tree_dirs:
        add(view_uri(directory, is_dir=True), directory_view(root, directory, tree_files, tree_dirs))
    for path in tree_files:
        add(view_uri(path), file_view(root, path))
    return files


def on_page_content(content: str, page, config, files, **kwargs) -> str:
    if page.file.src_uri.startswith(f"{PREFIX}/"):
        return content

    def href(path: str, is_dir: bool, line: str | None) -> str:
        target = files.get_file_from_path(view_uri(path, is_dir))
        url = get_relative_url(target.url, page.url)
        block = 1 if path in _tree["with_usage"] else 0
        return url + (f"#{LINE_ANCHOR.format(block=block, line=line)}" if line else "")

    def link(match: re.Match) -> str:
        if match.group("skip"):
            return match.group(0)
        text = match.group("code") or match.group("title")
        named = NAMED.match(html.unescape(text).strip())
        if not named:
            return match.group(0)
        path, line = named.group("path"), named.group("line")
        if path in _tree["files"] and not named.group("dir"):
            where = href(path, False, line)
        elif path in _tree["dirs"] and not line:
            where = href(path, True, None)
        else:
            parent = path.rpartition("/")[0]
            if "." in path.rpartition("/")[2] and (parent in _tree["dirs"] or not parent):
                log.warning(f"{page.file.src_uri} names `{text}`, which is not in the tree "
                            f"(no such file in {parent or 'the top directory'}/): fix the name, "
                            "or write it as plain text if the file is made by a procedure")
            return match.group(0)
        if match.group("code"):
            return f'<a href="{where}"><code>{text}</code></a>'
        return f'<span class="filename"><a href="{where}">{text}</a></span>'

    return CONTENT.sub(link, content)
