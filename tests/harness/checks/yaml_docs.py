"""YAML with line numbers, and the index of the tree's YAML files that every
manifest check shares (parsed once per run).

Mappings load as ``LineDict`` and sequences as ``LineList``: plain ``dict`` and
``list`` subclasses that also remember the 0-based line of every key / item,
so a check can point at the line of the field that is wrong.

Before parsing, text goes through Flux post-build substitution with defaults
(``flux_substitute``), since that is what the cluster applies; substitution
keeps lines where they are.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

import yamlload

from harness.checks import flux_substitute
from harness.model import Block, Location, Origin

# Top-level directories that are never part of the tree under test.
SKIP_DIRS = {
    ".git", ".github", ".nox", ".tools", ".venv", "venv", "site", "node_modules",
    "__pycache__", ".pytest_cache", "artifacts", "tests",
}
# Files that are YAML but not the tree's (mkdocs.yml uses python tags).
SKIP_FILES = {"mkdocs.yml", "mkdocs.yaml"}
# The directories of the reference tree (each needs a README.md).
TREE_DIRS = ("clusters", "platform", "apps", "create", "snippets")


class LineDict(dict):
    line: int = 0  # 0-based line of the mapping's first key

    def __init__(self) -> None:
        super().__init__()
        self.lines: dict[Any, int] = {}


class LineList(list):
    line: int = 0

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[int] = []


class _Loader(yamlload.Loader):  # libyaml when present
    """SafeLoader that records lines and refuses duplicate keys (the API
    server's YAML decoder refuses them too)."""


def _construct_map(loader: _Loader, node: yaml.MappingNode):
    data = LineDict()
    data.line = node.start_mark.line
    yield data
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in data:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                f"found duplicate key {key!r}", key_node.start_mark,
            )
        data[key] = loader.construct_object(value_node, deep=True)
        data.lines[key] = key_node.start_mark.line


def _construct_seq(loader: _Loader, node: yaml.SequenceNode):
    data = LineList()
    data.line = node.start_mark.line
    yield data
    for item in node.value:
        data.append(loader.construct_object(item, deep=True))
        data.lines.append(item.start_mark.line)


def _construct_timestamp(loader: _Loader, node: yaml.ScalarNode) -> str:
    # JSON has no timestamps: Kubernetes sees the text.
    return loader.construct_scalar(node)


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)


@dataclass
class Doc:
    """One YAML document: its data and the 0-based line it starts on."""

    data: Any
    line: int  # 0-based line of the document's content in the text

    @property
    def is_object(self) -> bool:
        return isinstance(self.data, dict) and "apiVersion" in self.data and "kind" in self.data

    def ident(self) -> str:
        data = self.data
        meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
        name = meta.get("name", "?")
        ns = meta.get("namespace")
        return f"{data.get('kind')} {ns + '/' if ns else ''}{name}"


@dataclass
class ParseError:
    line: int  # 0-based
    message: str


def parse(text: str) -> tuple[list[Doc], ParseError | None]:
    """Every non-empty document of ``text``, or the first parse error."""
    docs: list[Doc] = []
    loader = _Loader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            data = loader.construct_document(node)
            if data is not None:
                docs.append(Doc(data, node.start_mark.line))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        line = mark.line if mark is not None else 0
        problem = getattr(error, "problem", None) or str(error)
        context = getattr(error, "context", None)
        return docs, ParseError(line, f"{context + ': ' if context else ''}{problem}")
    finally:
        loader.dispose()
    return docs, None


def line_of(data: Any, path: list | tuple, fallback: int = 0) -> int:
    """The 0-based line of the field at ``path`` (JSON-schema style: keys and
    indexes), or of its nearest ancestor that has one."""
    line = getattr(data, "line", fallback)
    node = data
    for step in path:
        if isinstance(node, LineDict) and step in node:
            line = node.lines.get(step, line)
            node = node[step]
        elif isinstance(node, LineList) and isinstance(step, int) and 0 <= step < len(node):
            line = node.lines[step]
            node = node[step]
        else:
            break
    return line


# -- the tree ------------------------------------------------------------------


@dataclass
class TreeFile:
    path: str  # relative to the root
    raw: str  # as committed
    text: str  # after substitution with defaults
    docs: list[Doc]
    error: ParseError | None
    missing_vars: list[flux_substitute.Problem] = field(default_factory=list)

    def origin(self, line0: int) -> Origin:
        return Origin(self.path, line0 + 1)


def yaml_files(root: Path) -> list[str]:
    """The tree's YAML files, relative to ``root``, sorted."""
    return [rel for rel, _mtime, _size in stamp(root)]


def _stamps(root: str) -> tuple:
    """(path relative to ``root``, mtime, size) of every tree YAML file, sorted
    by path. Every check asks for the tree many times a run, and this walk is
    what tells a cached parse from a stale one: one ``scandir`` per folder,
    plain strings, one ``stat`` per YAML file (symbolic links to folders are
    not followed, as ``os.walk`` does not)."""
    found = []
    pending = [("", root)]
    while pending:
        rel_dir, path = pending.pop()
        try:
            entries = list(os.scandir(path))
        except OSError:
            continue  # unreadable, or gone since its parent was read
        for entry in entries:
            name = entry.name
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                if name not in SKIP_DIRS and (rel_dir or not name.startswith(".")) and not entry.is_symlink():
                    pending.append((f"{rel_dir}{name}/", entry.path))
            elif name.endswith((".yaml", ".yml")) and f"{rel_dir}{name}" not in SKIP_FILES:
                st = entry.stat()
                found.append((f"{rel_dir}{name}", st.st_mtime_ns, st.st_size))
    return tuple(sorted(found))


@functools.lru_cache(maxsize=8)
def _load(root: Path, stamp: tuple) -> dict[str, TreeFile]:
    files: dict[str, TreeFile] = {}
    for rel, _mtime, _size in stamp:
        raw = (root / rel).read_text(encoding="utf-8", errors="replace")
        text, problems, docs, error = _parsed(raw)
        files[rel] = TreeFile(rel, raw, text, list(docs), error, list(problems))
    return files


@functools.lru_cache(maxsize=1024)
def _parsed(raw: str) -> tuple:
    """A file's text substituted and parsed, once per content: a changed tree
    (or a copy of it, as the harness's own tests make) parses again only the
    files whose text changed. The documents are shared, as they are between
    the checks of one tree: nothing may change them."""
    text, problems = flux_substitute.substitute(raw)
    docs, error = parse(text)
    return text, tuple(problems), tuple(docs), error


def tree(root: Path) -> dict[str, TreeFile]:
    """Every YAML file of the tree under ``root``, parsed (cached until a file
    changes)."""
    root = Path(root).resolve()
    return _load(root, stamp(root))


def stamp(root: Path) -> tuple:
    """What identifies the tree's current content (paths, mtimes, sizes)."""
    return _stamps(os.path.realpath(root))


def by_ident(root: Path) -> dict[tuple[str, str], list[tuple[TreeFile, Doc]]]:
    """Tree objects by (kind, name), to find where a rendered object came from."""
    return _by_ident(Path(root).resolve(), stamp(root))


@functools.lru_cache(maxsize=8)
def _by_ident(root: Path, _stamp_value: tuple) -> dict:
    index: dict[tuple[str, str], list] = {}
    for tree_file in tree(root).values():
        for doc in tree_file.docs:
            if doc.is_object and isinstance(doc.data.get("metadata"), dict):
                key = (str(doc.data["kind"]), str(doc.data["metadata"].get("name")))
                index.setdefault(key, []).append((tree_file, doc))
    return index


def source_of(root: Path, data: dict, near: str = "", index: dict | None = None) -> tuple[TreeFile, Doc] | None:
    """The tree document a rendered object most likely came from: same kind and
    name, preferring files under ``near``. ``index`` is ``by_ident(root)``, for
    a caller that asks for many objects (it looks at the whole tree again
    otherwise)."""
    meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    index = by_ident(root) if index is None else index
    candidates = index.get((str(data.get("kind")), str(meta.get("name"))), [])
    if not candidates:
        return None
    near = near.rstrip("/")
    for candidate in candidates:
        if near and (candidate[0].path == near or candidate[0].path.startswith(near + "/")):
            return candidate
    return candidates[0]


# -- blocks --------------------------------------------------------------------


@dataclass
class BlockDocs:
    block: Block
    docs: list[Doc]
    error: ParseError | None
    missing_vars: list[flux_substitute.Problem]

    def where(self, line0: int) -> Location:
        return self.block.location(line0)


_block_cache: dict[tuple[str, int, str], BlockDocs] = {}


def block_docs(block: Block) -> BlockDocs:
    """A manifest block's documents (parsed once per run)."""
    key = (block.page, block.index, block.text)
    if key not in _block_cache:
        text, problems = flux_substitute.substitute(block.text)
        docs, error = parse(text)
        _block_cache[key] = BlockDocs(block, docs, error, problems)
    return _block_cache[key]


def manifest_blocks(blocks: list[Block]) -> list[BlockDocs]:
    """The parsed documents of every ``test: manifests`` block, in page order
    (``harness.selection``: a block whose include did not resolve is left
    out; the snippets check reports that failure, and it is the only one the
    block has)."""
    from harness import selection

    return [block_docs(block) for block in selection.select("yaml-parse", blocks)]
