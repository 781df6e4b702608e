"""Read the metadata comment that says how a block is tested.

The comment sits on the line directly above a fence (one blank line between
them is allowed) and is invisible on the site::

    <!-- test: local timeout=30 -->
    <!-- test: output unordered -->
    <!-- test: cluster staging -->
    <!-- test: skip reason="needs a cloud account" -->
    <!-- test: tree complete -->
    <!-- test: workflow -->

Words after the mode are ``key=value`` options (values may be quoted) or bare
flags (stored with the value ``"true"``); ``cluster`` takes the cluster name
as its first bare word.
"""

from __future__ import annotations

import re
import shlex

from harness.model import Mode

COMMENT = re.compile(r"^\s*<!--\s*test:\s*(?P<body>.*?)\s*-->\s*$")
LOOKS_LIKE_METADATA = re.compile(r"^\s*<!--\s*test\b")

YAML_LANGS = {"yaml", "yml"}
SHELL_LANGS = {"shell", "bash", "sh", "zsh"}
HCL_LANGS = {"hcl", "terraform", "tf"}
TRANSCRIPT_LANGS = {"console", "text", "shell-session", "output", ""}
CLUSTERS = {"development", "staging", "production", "sandbox"}

# Which languages each explicit mode accepts.
ALLOWED = {
    Mode.MANIFESTS: YAML_LANGS,
    Mode.LOCAL: SHELL_LANGS,
    Mode.CLUSTER: SHELL_LANGS,
    Mode.STATIC: SHELL_LANGS,
    Mode.OUTPUT: TRANSCRIPT_LANGS,
    Mode.TREE: {"text", ""},
    Mode.WORKFLOW: YAML_LANGS,
    Mode.HCL: HCL_LANGS,
}
# Options each mode understands (anything else is a typo worth failing on).
KNOWN_OPTIONS = {
    Mode.MANIFESTS: set(),
    Mode.LOCAL: {"timeout"},
    Mode.CLUSTER: {"cluster", "timeout"},
    Mode.STATIC: set(),
    Mode.OUTPUT: {"unordered"},
    Mode.SKIP: {"reason"},
    Mode.TREE: {"complete"},
    Mode.WORKFLOW: set(),
    Mode.HCL: set(),
}


def default_mode(lang: str) -> Mode:
    """The mode of a block without a metadata comment."""
    if lang in YAML_LANGS:
        return Mode.MANIFESTS
    if lang in SHELL_LANGS:
        return Mode.STATIC
    if lang in HCL_LANGS:
        return Mode.HCL
    return Mode.NONE


def find_comment(lines: list[str], fence_index: int) -> tuple[int, str] | None:
    """The metadata comment above the fence at ``lines[fence_index]``: its
    index and text, or None. One blank line may separate them."""
    i = fence_index - 1
    if i >= 0 and not lines[i].strip():
        i -= 1
    if i >= 0 and LOOKS_LIKE_METADATA.match(lines[i]):
        return i, lines[i]
    return None


def parse(comment: str | None, lang: str) -> tuple[Mode, dict[str, str], list[str]]:
    """Mode, options and problems for a block of language ``lang`` whose
    metadata comment is ``comment`` (None when it has none)."""
    if comment is None:
        return default_mode(lang), {}, []
    match = COMMENT.match(comment)
    if not match:
        return default_mode(lang), {}, [
            f"metadata comment {comment.strip()!r} is malformed: write it as "
            "'<!-- test: MODE [key=value ...] -->' on one line"
        ]
    try:
        words = shlex.split(match.group("body"))
    except ValueError as error:
        return default_mode(lang), {}, [f"metadata comment cannot be read ({error}): check its quotes"]
    if not words:
        return default_mode(lang), {}, ["metadata comment names no mode: write e.g. '<!-- test: local -->'"]
    try:
        mode = Mode(words[0])
    except ValueError:
        names = ", ".join(m.value for m in Mode if m is not Mode.NONE)
        return default_mode(lang), {}, [f"unknown test mode {words[0]!r}: use one of {names}"]

    options: dict[str, str] = {}
    errors: list[str] = []
    for word in words[1:]:
        if "=" in word:
            key, value = word.split("=", 1)
            options[key] = value
        elif mode is Mode.CLUSTER and "cluster" not in options:
            options["cluster"] = word
        else:
            options[word] = "true"

    unknown = sorted(set(options) - KNOWN_OPTIONS.get(mode, set()))
    if unknown:
        errors.append(f"unknown option(s) {', '.join(unknown)} for 'test: {mode.value}'")
    if mode is Mode.SKIP and not options.get("reason", "").strip():
        errors.append('a skipped block needs a reason: <!-- test: skip reason="why" -->')
    if mode is Mode.CLUSTER and options.get("cluster") not in CLUSTERS:
        errors.append(
            f"'test: cluster' needs a cluster name, one of {', '.join(sorted(CLUSTERS))}"
            f" (got {options.get('cluster')!r})"
        )
    if "timeout" in options and not options["timeout"].isdigit():
        errors.append(f"timeout must be a whole number of seconds (got {options['timeout']!r})")
    allowed = ALLOWED.get(mode)
    if allowed is not None and lang not in allowed:
        errors.append(
            f"'test: {mode.value}' does not apply to a {lang or 'plain'!s} block"
            f" (it applies to: {', '.join(sorted(a or 'plain' for a in allowed))})"
        )
    return mode, options, errors
