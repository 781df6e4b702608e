"""What the procedures in ``snippets/`` make on a cluster, read from the
scripts themselves.

A cluster has objects that no file of the tree holds: whoever creates it
runs the project's procedures, and those make the ConfigMap of cluster
variables, the release key's Secret, the credentials ``flux bootstrap``
stores. The ``references`` check counts them as present, so they are read
here from the scripts' own text, never from a list kept by hand:

- a manifest a script applies: the YAML of a here-document, or of a
  ``printf`` format (``\\n`` for newlines), in a script that runs
  ``kubectl apply`` or ``kubectl create -f``;
- ``kubectl create secret|configmap|namespace|serviceaccount NAME`` and
  ``flux create secret KIND NAME``, with their ``--namespace``;
- ``flux bootstrap``: the call's flags (what it installs, and the Secret
  it stores the credentials in, ``--secret-name`` or the CLI's default).

The pages' ``cluster NAME`` blocks are procedures too: a reader runs them on
that cluster (and the cluster tier runs them there), so what one makes with
the commands above counts on that cluster only (``from_cluster_blocks``),
at the page line that makes it.

A script may make an object only under a condition (an environment variable
set); the object still counts, since the procedure is how the cluster gets
it. Values that are only known when the script runs (``$CLUSTER``) stay as
written; a name made of such a value is not counted.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from harness.checks import cli_help, yaml_docs
from harness.model import Origin

SCRIPTS_DIR = "snippets"
HEREDOC = re.compile(r"<<-?\s*(['\"]?)(?P<word>[A-Za-z_]\w*)\1")
PRINTF_FORMAT = re.compile(r"printf\s+'(?P<format>(?:[^'\\]|\\.)*)'")
TOOL_WORD = re.compile(r"^\$\{?\w+(?::?-(?P<default>[\w./-]+))?\}?$")
CREATE_KINDS = {"secret": "Secret", "configmap": "ConfigMap", "cm": "ConfigMap", "namespace": "Namespace",
                "ns": "Namespace", "serviceaccount": "ServiceAccount", "sa": "ServiceAccount"}
TOOLS = re.compile(r"kubectl|KUBECTL|flux|FLUX")
APPLY = re.compile(r"\bapply\b|\bcreate\b[^\n]*\s-f\b")


@dataclass(frozen=True)
class Made:
    """One object a script makes."""

    group: str
    kind: str
    namespace: str | None  # None: cluster-scoped (or the command names none)
    name: str
    where: Origin  # the script line that makes it
    how: str  # for messages: "snippets/x.sh:12 <how>"


@dataclass(frozen=True)
class BootstrapCall:
    """A ``flux bootstrap`` command in a script, with the flags it passes
    literally (a flag whose value is only known at run time is left out)."""

    where: Origin
    command: tuple[str, ...] = ()  # ("bootstrap", "git")
    flags: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Procedures:
    made: tuple[Made, ...]
    bootstraps: tuple[BootstrapCall, ...]


def _scripts(root: Path) -> list[str]:
    base = Path(root) / SCRIPTS_DIR
    if not base.is_dir():
        return []
    return sorted(f"{SCRIPTS_DIR}/{name}" for name in os.listdir(base) if name.endswith(".sh"))


def _literal(word: str) -> bool:
    return bool(word) and "$" not in word and "`" not in word


def _from_yaml(text: str, rel: str, first_line: int, how: str) -> list[Made]:
    """Objects of the YAML ``text`` (lines of a script from ``first_line``, 0-based)."""
    if "kind:" not in text:
        return []
    docs, error = yaml_docs.parse(text)
    if error is not None:
        return []
    made = []
    for doc in docs:
        if not doc.is_object or not isinstance(doc.data.get("metadata"), dict):
            continue
        meta = doc.data["metadata"]
        name, namespace = str(meta.get("name") or ""), meta.get("namespace")
        if not _literal(name) or (namespace is not None and not _literal(str(namespace))):
            continue
        line = yaml_docs.line_of(doc.data, ["metadata", "name"], doc.line)
        made.append(Made(str(doc.data["apiVersion"]).rpartition("/")[0], str(doc.data["kind"]),
                         str(namespace) if namespace else None, name, Origin(rel, first_line + line + 1), how))
    return made


def _heredocs(lines: list[str], rel: str) -> list[Made]:
    made, i = [], 0
    while i < len(lines):
        match = HEREDOC.search(lines[i])
        i += 1
        if not match or "<<<" in lines[i - 1][match.start() - 1:match.start() + 3]:
            continue
        start = i
        while i < len(lines) and lines[i].strip() != match.group("word"):
            i += 1
        made += _from_yaml("\n".join(lines[start:i]), rel, start, "applies it")
        i += 1
    return made


def _printf_manifests(lines: list[str], rel: str) -> list[Made]:
    made = []
    for number, line in enumerate(lines):
        for match in PRINTF_FORMAT.finditer(line):
            # The format's conversions (%s: a value given at run time) become a
            # placeholder, so that the YAML around them parses.
            text = re.sub(r"%[-0-9.]*[sdqb]", "value", match.group("format").replace("%%", "%"))
            text = text.replace("\\n", "\n").replace("\\t", "\t")
            for item in _from_yaml(text, rel, 0, "applies it"):
                made.append(Made(item.group, item.kind, item.namespace, item.name, Origin(rel, number + 1), item.how))
    return made


def _tool(word: str) -> str:
    """The tool a command word runs: ``"${KUBECTL:-kubectl}"`` runs kubectl."""
    match = TOOL_WORD.match(word)
    if match and match.group("default"):
        return os.path.basename(match.group("default"))
    return os.path.basename(word)


def _flag_values(words: list[str]) -> tuple[dict[str, str | None], list[str]]:
    """(--flag -> value, the other words) of one command; a flag whose value
    is not literal gets None."""
    flags: dict[str, str | None] = {}
    rest: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if word.startswith("-") and word != "-":
            name, eq, value = word.lstrip("-").partition("=")
            if not eq and i < len(words) and not words[i].startswith("-"):
                value = words[i]
                i += 1
            flags[name] = value if _literal(value) else None
        else:
            rest.append(word)
    return flags, rest


def _tool_lines(lines: list[str]):
    """(first line, text) of each command line that may run kubectl or flux,
    continuation lines joined, here-document bodies left out."""
    i = 0
    while i < len(lines):
        start, joined = i, lines[i]
        while joined.endswith("\\") and i + 1 < len(lines):
            i += 1
            joined = joined[:-1] + " " + lines[i]
        i += 1
        heredoc = HEREDOC.search(joined)
        if heredoc and "<<<" not in joined[max(0, heredoc.start() - 1):heredoc.start() + 3]:
            while i < len(lines) and lines[i].strip() != heredoc.group("word"):
                i += 1
            i += 1
        if TOOLS.search(joined):
            yield start, joined


def _commands(lines: list[str], rel: str) -> tuple[list[Made], list[BootstrapCall]]:
    made: list[Made] = []
    boots: list[BootstrapCall] = []
    found = [(start, words) for start, line in _tool_lines(lines) for _offset, words in cli_help.commands(line)]
    for offset, words in found:
        while words and (re.match(r"^[A-Za-z_]\w*=", words[0]) or words[0] in cli_help.PREFIXES):
            words = words[1:]
        if not words:
            continue
        tool = _tool(words[0])
        flags, rest = _flag_values(words[1:])
        where = Origin(rel, offset + 1)
        namespace = flags.get("namespace") or flags.get("n")
        if tool == "kubectl" and len(rest) >= 3 and rest[0] == "create" and rest[1] in CREATE_KINDS:
            kind = CREATE_KINDS[rest[1]]
            name = rest[3] if kind == "Secret" and len(rest) > 3 else rest[2]
            if _literal(name):
                made.append(Made("", kind, None if kind == "Namespace" else (namespace or "default"), name, where,
                                 f"runs `kubectl create {rest[1]}`"))
        elif tool == "flux" and len(rest) >= 4 and rest[:2] == ["create", "secret"] and _literal(rest[3]):
            made.append(Made("", "Secret", namespace or "flux-system", rest[3], where, "runs `flux create secret`"))
        elif tool == "flux" and rest[:1] == ["bootstrap"]:
            boots.append(BootstrapCall(where, tuple(rest[:2]), {k: v for k, v in flags.items() if v is not None}))
    return made, boots


@functools.lru_cache(maxsize=8)
def _read(root: Path, stamp: tuple) -> Procedures:
    made: list[Made] = []
    boots: list[BootstrapCall] = []
    for rel, _mtime, _size in stamp:
        lines = (Path(root) / rel).read_text(encoding="utf-8", errors="replace").split("\n")
        found, calls = _commands(lines, rel)
        made += found
        boots += calls
        if any(APPLY.search(line) for line in lines if "kubectl" in line or "KUBECTL" in line):
            made += _heredocs(lines, rel) + _printf_manifests(lines, rel)
    return Procedures(tuple(made), tuple(boots))


def read(root: Path) -> Procedures:
    """Everything the scripts in ``snippets/`` make (cached until one changes)."""
    root = Path(root).resolve()
    stamp = []
    for rel in _scripts(root):
        st = os.stat(root / rel)
        stamp.append((rel, st.st_mtime_ns, st.st_size))
    return _read(root, tuple(stamp))


def from_cluster_blocks(blocks) -> dict[str, list[Made]]:
    """What the pages' ``cluster NAME`` blocks make, by the cluster they run
    on (``NAME``), each at the page line (and tree line) of its command."""
    from harness.model import Mode

    out: dict[str, list[Made]] = {}
    for block in blocks:
        if block.mode is not Mode.CLUSTER or not block.options.get("cluster"):
            continue
        found, _calls = _commands(block.lines, block.page)
        made = []
        for item in found:
            # _commands counts lines from 1 in the block's text: say where the page shows it.
            where = block.location(item.where.line - 1).page
            made.append(Made(item.group, item.kind, item.namespace, item.name, where, item.how))
        out.setdefault(block.options["cluster"], []).extend(made)
    return out
