"""Check: every kustomization.yaml in the tree builds with the pinned
kustomize, and every object it renders validates (``schemas``).

Objects that come out of the build exactly as a tree file has them were
already validated by the schema check at their file and line; only objects the
build changed (patches, generators, namespaces, images) are validated again,
and a failure names the kustomization and, when it can be found, the tree file
the object came from.

``build`` is shared with the Flux checks: each directory is built once per run
(kustomize only reads the tree), several at a time.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml

import yamlload

from harness import build_cache, coverage, scratch, tools
from harness.checks import flux_substitute, yaml_docs
from harness.model import Context, Finding, Origin, Outcome

CHECK = "kustomize-build"
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
TIMEOUT = 60


@dataclass(frozen=True)
class Build:
    directory: str  # relative to the root
    text: str  # the rendered YAML ("" on failure)
    error: str | None  # kustomize's message when the build failed


def kustomization_file(root: Path, directory: str) -> str | None:
    for name in KUSTOMIZATION_FILES:
        if (Path(root) / directory / name).is_file():
            return os.path.normpath(os.path.join(directory, name))
    return None


def kustomization_dirs(root: Path) -> list[str]:
    """Directories of the tree that hold a kustomization file."""
    found = set()
    for rel in yaml_docs.yaml_files(Path(root)):
        if os.path.basename(rel) in KUSTOMIZATION_FILES:
            found.add(os.path.dirname(rel) or ".")
    return sorted(found)


FROM = re.compile(r"accumulating resources from '(?P<entry>[^']+)'")
RECURSED = re.compile(r"recursed accumulation of path '(?P<path>[^']+)'")
TAIL = re.compile(r"'?: must build at directory: .*$")
LSTAT = re.compile(r"evalsymlink failure on '[^']*' : lstat [^:]*: ")


def describe_error(root: Path, error: str) -> str:
    """kustomize's message, readable: paths relative to the tree, and without
    the misleading tail kustomize adds when an entry is neither a file nor a
    directory ("must build at directory: not a valid directory")."""
    text = error.removeprefix("Error: ").replace(str(Path(root).resolve()) + "/", "").replace(str(root) + "/", "")
    entries = FROM.findall(text)
    if entries:
        inner = text[text.rfind("accumulating resources from '"):]
        reason = TAIL.sub("", inner.split("': ", 1)[1] if "': " in inner else inner)
        reason = LSTAT.sub("", reason).strip().rstrip("'")
        where = RECURSED.findall(text)
        return (f"resource `{entries[-1]}`" + (f" (listed in {where[-1]})" if where else "") + f": {reason}")
    return TAIL.sub("", text)


def failing_directory(error: str, directory: str) -> str:
    """The kustomization directory the failure is in: the innermost base the
    build recursed into, else the directory built."""
    where = RECURSED.findall(error)
    return where[-1] if where else directory


ROOT_MARK = "\0root\0"  # the tree's path in a cached message, put back on reading
REMOTE = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|git@|github\.com/)")
BASE_KEYS = ("resources", "components", "bases")


def inputs(root: Path, directory: str, overrides: dict[str, str] | None = None) -> list[tuple[str, bytes]] | None:
    """Every file ``kustomize build DIRECTORY`` can read, with its content:
    the files below the directory and below every base or component
    directory it names (kustomize reads files only below a kustomization's
    own directory); ``overrides`` replaces the content of some of them. None
    when the build reads something outside the tree (a remote base)."""
    root = Path(root)
    overrides = overrides or {}
    seen: set[str] = set()
    found: dict[str, bytes] = {}
    todo = [os.path.normpath(directory)]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for dirpath, dirnames, filenames in os.walk(root / current):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in filenames:
                rel = os.path.normpath(os.path.relpath(os.path.join(dirpath, name), root))
                if rel not in found:
                    found[rel] = overrides[rel].encode() if rel in overrides else Path(dirpath, name).read_bytes()
        kfile = kustomization_file(root, current)
        if kfile is None:
            continue
        try:
            data = yamlload.load(found[kfile].decode("utf-8", "replace"))
        except yaml.YAMLError:
            data = None
        for key in BASE_KEYS:
            for entry in (data.get(key) or []) if isinstance(data, dict) else []:
                if not isinstance(entry, str):
                    continue
                if REMOTE.match(entry):
                    return None
                target = os.path.normpath(os.path.join(current, entry))
                if (root / target).is_dir():
                    todo.append(target)
    return sorted(found.items())


def _run(kustomize: str, cwd: Path, directory: str) -> Build:
    try:
        proc = subprocess.run(
            [kustomize, "build", directory], cwd=cwd, capture_output=True, text=True,
            timeout=TIMEOUT, env=dict(os.environ, HOME=os.environ.get("HOME", "/tmp")),
        )
    except subprocess.TimeoutExpired:
        return Build(directory, "", f"kustomize build did not finish in {TIMEOUT}s")
    if proc.returncode != 0:
        message = " ".join(proc.stderr.split()) or f"exit status {proc.returncode}"
        return Build(directory, "", message)
    return Build(directory, proc.stdout, None)


def cached_build(root: Path, directory: str, kustomize: str, overrides: dict[str, str] | None = None) -> Build:
    """``kustomize build DIRECTORY`` of ``root``, with ``overrides`` (path ->
    text) in place of some files, answered from ``harness.build_cache`` when
    the same input was built before. With overrides the build runs in a
    scratch copy of the files it reads."""
    root = Path(root).resolve()
    parts = inputs(root, directory, overrides)
    name = None
    if parts is not None:
        name = build_cache.key("kustomize", kustomize, [("directory", directory.encode()), *parts])
        answer = build_cache.get("kustomize", name)
        if answer is not None:
            error = answer["error"].replace(ROOT_MARK, str(root)) if answer["error"] is not None else None
            return Build(directory, answer["text"], error)
    if overrides:
        with tempfile.TemporaryDirectory(prefix="docs-test-kustomize-") as tmp:
            copy = Path(tmp)
            files = parts if parts is not None else [
                (rel, (root / rel).read_bytes()) for rel in scratch.tree_files(root) if (root / rel).is_file()]
            for rel, content in files:
                (copy / rel).parent.mkdir(parents=True, exist_ok=True)
                (copy / rel).write_bytes(overrides[rel].encode() if rel in overrides else content)
            result = _run(kustomize, copy, directory)
            if result.error is not None:
                result = Build(directory, "", result.error.replace(str(copy), str(root)))
    else:
        result = _run(kustomize, root, directory)
    if name is not None:
        error = result.error.replace(str(root), ROOT_MARK) if result.error is not None else None
        build_cache.put("kustomize", name, {"text": result.text, "error": error})
    return result


@functools.lru_cache(maxsize=256)
def _build(root: Path, directory: str, _stamp: tuple, kustomize: str) -> Build:
    return cached_build(root, directory, kustomize)


def build(root: Path, directory: str) -> Build | None:
    """``kustomize build DIRECTORY`` (kept per tree content, in this process
    and on disk); None when kustomize is missing."""
    kustomize = tools.find("kustomize", Path(root))
    if kustomize is None:
        return None
    root = Path(root).resolve()
    return _build(root, os.path.normpath(directory), yaml_docs.stamp(root), kustomize)


def build_many(root: Path, directories: list[str]) -> dict[str, Build | None]:
    """Build several directories in parallel."""
    workers = max(2, min(8, os.cpu_count() or 2))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda d: build(root, d), directories))
    return dict(zip(directories, results))


def _error_origin(root: Path, kfile: str, error: str) -> Origin:
    """Point at the entry of the kustomization file that the error names."""
    tree_file = yaml_docs.tree(root).get(kfile)
    if tree_file is None or not tree_file.docs or not isinstance(tree_file.docs[0].data, dict):
        return Origin(kfile, 1)
    data = tree_file.docs[0].data
    for key in ("resources", "components", "bases", "patches", "patchesStrategicMerge", "configMapGenerator"):
        entries = data.get(key)
        if not isinstance(entries, list):
            continue
        for index, entry in enumerate(entries):
            text = entry if isinstance(entry, str) else (entry.get("path") if isinstance(entry, dict) else None)
            if isinstance(text, str) and text and text in error:
                return tree_file.origin(yaml_docs.line_of(data, [key, index]))
    return tree_file.origin(tree_file.docs[0].line)


def _canonical(data) -> str:
    return json.dumps(data, sort_keys=True, default=str)


@functools.lru_cache(maxsize=8)
def _validated_in_tree(root: Path, _stamp: tuple) -> frozenset[str]:
    seen = set()
    for tree_file in yaml_docs.tree(root).values():
        for doc in tree_file.docs:
            if doc.is_object:
                seen.add(_canonical(doc.data))
    return frozenset(seen)


def run(ctx: Context) -> list[Finding]:
    # Imported here: what only reads the tree's kustomizations (the Flux
    # checks, the site's checked-by marks) does without the schema libraries.
    from harness.checks import schemas

    root = Path(ctx.root).resolve()
    flux = Path(ctx.flux_schemas) if ctx.flux_schemas else None
    directories = kustomization_dirs(root)
    findings: list[Finding] = []
    if tools.find("kustomize", root) is None:
        reason = tools.missing_reason("kustomize", root)
        return [
            Finding(CHECK, Outcome.SKIPPED, Origin(kustomization_file(root, d) or d, 1), reason)
            for d in directories
        ]
    already = _validated_in_tree(root, yaml_docs.stamp(root))
    index = yaml_docs.by_ident(root)
    built = build_many(root, directories)
    failed_dirs = {d for d, r in built.items() if r.error is not None}
    for directory, result in built.items():
        kfile = kustomization_file(root, directory) or directory
        if result.error is not None:
            inner = os.path.relpath(os.path.join(root, failing_directory(result.error, directory)), root) \
                if os.path.isabs(failing_directory(result.error, directory)) else failing_directory(result.error, directory)
            inner = os.path.normpath(inner)
            if inner != directory and inner in failed_dirs:
                continue  # the base it builds on fails, and is reported on its own
            message = describe_error(root, result.error)
            if message.endswith("no such file or directory"):
                message += ": fix the entry or restore the file"
            findings.append(Finding(
                CHECK, Outcome.FAILED, _error_origin(root, kfile, message),
                f"`kustomize build {directory}` failed: {message}",
            ))
            continue
        text, _problems = flux_substitute.substitute(result.text)
        docs, error = yaml_docs.parse(text)
        if error is not None:
            findings.append(Finding(CHECK, Outcome.FAILED, Origin(kfile, 1),
                                    f"the output of `kustomize build {directory}` does not parse: {error.message}"))
            continue
        failed = False
        covered = {kfile}
        for doc in docs:
            if doc.is_object:
                source = yaml_docs.source_of(root, doc.data, directory, index)
                covered.add(source[0].path if source is not None else None)
            if not doc.is_object or _canonical(doc.data) in already:
                continue
            result_of = schemas.validate(doc.data, flux)
            if isinstance(result_of, schemas.Skip) or not result_of:
                continue
            failed = True
            source = yaml_docs.source_of(root, doc.data, directory)
            for problem in result_of:
                if source is not None:
                    tree_file, source_doc = source
                    where = tree_file.origin(yaml_docs.line_of(source_doc.data, problem.path, source_doc.line))
                else:
                    where = Origin(kfile, 1)
                findings.append(Finding(
                    CHECK, Outcome.FAILED, where,
                    f"{doc.ident()} as `kustomize build {directory}` renders it: {problem.message}",
                ))
        if not failed:
            findings.append(Finding(CHECK, Outcome.PASSED, Origin(kfile, 1),
                                    f"`kustomize build {directory}`: {len(docs)} objects",
                                    covers=coverage.covers_of(covered)))
    return findings
