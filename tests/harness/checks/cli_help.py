"""Check the commands a shell block shows against the tool's own help.

For ``kubectl``, ``flux``, ``kind``, ``git`` and ``rsync``: every subcommand
must be one the tool lists, and every flag one its help (or its global
options) lists. The help comes from the installed tool, so the check follows
the version that is installed; a tool that is not installed skips the check
for the blocks that use it, with the reason in the report.

Commands are read with ``shlex`` from simple command lines: continuation
lines are joined, heredoc bodies skipped, and ``&&``, ``|``, ``;``, ``$(``
start a new command. Words with ``$`` in a subcommand position stop the
check for that command (the value is only known when it runs).
"""

from __future__ import annotations

import functools
import re
import shlex
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

from harness import build_cache, selection
from harness.model import Block, Context, Finding, Outcome

TOOLS = ("kubectl", "flux", "kind", "git", "rsync")
PREFIXES = {"sudo", "command", "exec", "time", "env", "if", "then", "else", "elif", "while", "until", "do", "!",
            "{", "}", "xargs", "watch"}
# git subcommands whose -h does not list the revision/diff options they accept.
GIT_FREEFORM = {"log", "show", "diff", "rev-list", "shortlog", "format-patch", "whatchanged", "rev-parse",
                "for-each-ref", "grep", "blame", "describe"}
# git's own options (before the subcommand); `git help -a` does not list them.
GIT_GLOBAL = {"C": True, "c": True, "git-dir": True, "work-tree": True, "namespace": True, "no-pager": False,
              "paginate": False, "p": False, "P": False, "bare": False, "version": False, "exec-path": False,
              "no-replace-objects": False, "literal-pathspecs": False}
HEREDOC = re.compile(r"<<-?\s*(['\"]?)(?P<word>[A-Za-z_][\w]*)\1")
# A command and its summary: cobra pads the names to the longest plus one
# space, so the longest name ("kustomization Reconcile ...") has just one.
COMMAND_LINE = re.compile(r"^  (?P<name>[a-z][\w-]*)\s+\S")
SECTION = re.compile(r"^\S.*[Cc]ommands(?: \(.*\))?:\s*$")
OPTION_LINE = re.compile(r"^\s{0,12}(?P<spec>-[^\s].*?)(?:\s{2,}|:\s*$|$)")


@functools.lru_cache(maxsize=None)
def tool_path(name: str) -> str | None:
    try:
        from harness import tools

        return tools.find(name)
    except ImportError:  # pragma: no cover
        return shutil.which(name)


def missing_reason(name: str) -> str:
    try:
        from harness import tools

        return tools.missing_reason(name)
    except ImportError:  # pragma: no cover
        return f"{name} not installed (missing tool)"


@functools.lru_cache(maxsize=None)
def help_text(tool: str, path: tuple[str, ...]) -> str:
    binary = tool_path(tool)
    if tool == "git":
        argv = [binary, *path, "-h"] if path else [binary, "help", "-a"]
    elif tool == "rsync":
        argv = [binary, "--help"]
    elif tool == "kubectl" and path == ("options",):
        argv = [binary, "options"]  # the global flags
    else:
        argv = [binary, *path, "--help"]
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
    # A help text depends on the binary alone (and, for `git help -a`, on the
    # git-* commands on PATH, which is fixed here): kept on disk per binary.
    name = build_cache.key("help", binary, [("argv", "\0".join(argv[1:]).encode()), ("PATH", env["PATH"].encode())])
    answer = build_cache.get("help", name)
    if answer is not None:
        return answer["text"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)
    build_cache.put("help", name, {"text": proc.stdout + proc.stderr})
    return proc.stdout + proc.stderr


@functools.lru_cache(maxsize=None)
def subcommands(tool: str, path: tuple[str, ...]) -> frozenset[str]:
    text = help_text(tool, path)
    if tool == "git":
        if path:
            return frozenset()
        return frozenset(m.group(1) for m in re.finditer(r"^   ([a-z][\w-]*)", text, re.M))
    if tool == "rsync":
        return frozenset()
    names, inside = set(), False
    for line in text.splitlines():
        if SECTION.match(line):
            inside = True
        elif not line.strip() or line[:1] not in (" ", "\t"):
            inside = False if line.strip() else inside
        elif inside and (m := COMMAND_LINE.match(line)):
            names.add(m.group("name"))
    return frozenset(names)


def parse_options(text: str) -> dict[str, bool]:
    """Flag name -> takes a value, from a help text."""
    flags: dict[str, bool] = {}
    for line in text.splitlines():
        m = OPTION_LINE.match(line)
        if not m:
            continue
        names, takes = [], False
        for part in re.split(r",\s*", m.group("spec")):
            fm = re.match(r"^(-{1,2})(\[no-\])?([\w][\w.-]*)(\[?=(\S*))?(?:\s+(\S+))?", part.strip())
            if not fm:
                continue
            dashes, negatable, name, eq, default, word = fm.groups()
            if eq and eq.startswith("["):
                pass  # optional value, only attached with =
            elif eq:
                takes = takes or default.rstrip(":") not in ("false", "true")
            else:
                takes = takes or (bool(word) and not word.startswith(("(", "[")))
            names.append(name)
            if negatable:
                flags[f"no-{name}"] = False
        for name in names:
            flags[name] = takes
    flags.setdefault("help", False)
    flags.setdefault("h", False)
    return flags


@functools.lru_cache(maxsize=None)
def options(tool: str, path: tuple[str, ...]) -> dict[str, bool]:
    flags = parse_options(help_text(tool, path))
    if tool == "kubectl":
        flags = {**parse_options(help_text("kubectl", ("options",))), **flags}
    elif tool == "git" and not path:
        flags.update(GIT_GLOBAL)
    if tool == "git":
        # git's option parser accepts --no-X for every long option X that
        # does not say otherwise (`git revert --no-edit`); -h lists only --X.
        flags = {**{f"no-{name}": False for name in flags if len(name) > 1 and not name.startswith("no-")},
                 **flags}
    return flags


def show(tool: str, path: tuple[str, ...]) -> str:
    return "`" + " ".join((tool, *path)) + "`"


def commands(text: str) -> list[tuple[int, list[str]]]:
    """(line offset, words) of each simple command in a shell block."""
    lines = text.split("\n")
    found: list[tuple[int, list[str]]] = []
    i = 0
    while i < len(lines):
        start, joined = i, lines[i]
        while joined.endswith("\\") and i + 1 < len(lines):
            i += 1
            joined = joined[:-1] + " " + lines[i]
        heredoc = HEREDOC.search(joined)
        i += 1
        if heredoc:
            while i < len(lines) and lines[i].strip() != heredoc.group("word"):
                i += 1
            i += 1
        try:
            lexer = shlex.shlex(joined, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            tokens = list(lexer)
        except ValueError:
            continue
        current: list[str] = []
        for token in tokens + [";"]:
            if token and set(token) <= set("&|;()<>"):
                if current:
                    found.append((start, current))
                current = []
            else:
                current.append(token)
    return found


def strip_prefix(words: list[str]) -> list[str]:
    while words and (words[0] in PREFIXES or re.match(r"^[A-Za-z_]\w*=", words[0]) or words[0].startswith("$")):
        if words[0].startswith("$") and words[0] not in ("$",):
            words = words[1:]
            continue
        words = words[1:]
    return words


def check_command(tool: str, args: list[str]) -> list[str]:
    """Problems with one command line of ``tool`` (without the tool word)."""
    problems: list[str] = []
    path: tuple[str, ...] = ()
    descending = True
    i = 0
    while i < len(args):
        word = args[i]
        i += 1
        if word == "--":
            break
        if word.startswith("-") and word != "-":
            flags = options(tool, path)
            skip_flags = tool == "git" and path and path[0] in GIT_FREEFORM
            if word.startswith("--"):
                name, has_value = word[2:].split("=", 1)[0], "=" in word
                if name not in flags and not skip_flags:
                    problems.append(f"{show(tool, path)} has no flag --{name}")
                elif flags.get(name) and not has_value:
                    i += 1
            else:
                for k, char in enumerate(word[1:]):
                    if char not in flags and not skip_flags:
                        problems.append(f"{show(tool, path)} has no flag -{char}")
                        break
                    if flags.get(char):
                        if k == len(word) - 2:
                            i += 1
                        break
            continue
        if not descending or "$" in word or "`" in word:
            if "$" in word and descending:
                break
            continue
        known = subcommands(tool, path)
        if tool == "git" and not path and word not in known:
            problems.append(f"`git {word}` is not a git command (not in `git help -a`)")
            break
        if known and word in known:
            path += (word,)
            continue
        if known and (not path or tool != "git"):
            if not path or not _accepts_args(tool, path):
                problems.append(f"{word!r} is not a subcommand of {show(tool, path)}")
                break
        descending = False
    return problems


def _accepts_args(tool: str, path: tuple[str, ...]) -> bool:
    """Whether a command with subcommands also runs by itself with arguments
    (its usage line shows more than ``[command]``)."""
    usage = re.search(r"^Usage:\s*\n\s*(.*)$", help_text(tool, path), re.M)
    return bool(usage) and "[command]" not in usage.group(1) and "[flags]" in usage.group(1) and (
        re.search(r"\b[A-Z]{2,}\b|<", usage.group(1)) is not None
    )


def run(ctx: Context) -> list[Finding]:
    # The shell blocks that name a tool of TOOLS (harness.selection).
    blocks = selection.select("cli-help", ctx.blocks)
    # Blocks are checked side by side: the time goes into the tools' --help
    # runs (cached, so each help text is read once per run).
    with ThreadPoolExecutor(max_workers=4) as pool:
        return [finding for found in pool.map(check_block, blocks) for finding in found]


@functools.lru_cache(maxsize=1024)
def tool_commands(text: str) -> tuple[tuple[int, tuple[str, ...]], ...]:
    """(line offset, words) of each command of a tool the check knows
    (``TOOLS``), the tool's name first (read once per text: the check and
    the selection both ask)."""
    found = []
    for offset, words in commands(text):
        words = strip_prefix(words)
        if words and words[0] in TOOLS:
            found.append((offset, tuple(words)))
    return tuple(found)


def tools_used(block: Block) -> list[str]:
    """The tools whose commands the block shows, in ``TOOLS`` order: what the
    check looks up (and what the "checked by" mark names)."""
    named = {words[0] for _, words in tool_commands(block.text)}
    return [tool for tool in TOOLS if tool in named]


def check_block(block: Block) -> list[Finding]:
    findings: list[Finding] = []
    used, missing = False, set()
    for offset, words in tool_commands(block.text):
        tool = words[0]
        if tool_path(tool) is None:
            missing.add(tool)
            continue
        used = True
        for problem in check_command(tool, list(words[1:])):
            findings.append(Finding(
                "cli-help", Outcome.FAILED, block.location(offset),
                f"{problem}: check the spelling against `{tool} ... --help` of the pinned version", block,
            ))
    for tool in sorted(missing):
        findings.append(Finding("cli-help", Outcome.SKIPPED, block.location(0), missing_reason(tool), block))
    if used and not any(f.outcome is Outcome.FAILED for f in findings):
        findings.append(Finding("cli-help", Outcome.PASSED, block.location(0), "", block))
    return findings
