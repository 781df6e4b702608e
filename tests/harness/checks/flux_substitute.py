"""Flux post-build variable substitution, offline.

kustomize-controller substitutes ``${name}`` forms in what a Kustomization
applies when its ``spec.postBuild`` defines variables. The tree's cluster
variables come from an optional ConfigMap that the harness does not have, so
it substitutes the way a cluster without that ConfigMap does: every
``${name:=default}`` takes its default.

What this implementation handles (a subset of what Flux's envsubst does):

- ``${name}``: the value given, else a problem (Flux would silently put an
  empty string there; the harness treats it as an error);
- ``${name:=default}``, ``${name:-default}`` (and the forms without the colon):
  the value given, else the default;
- ``$${...}``: an escaped, literal ``${...}``;
- any other ``${...}`` form (``${name/a/b}``, ``${name^^}``, ...) is reported as
  unsupported: use the forms above in the tree.

Full-line YAML comments are left alone (Flux substitutes the serialised
object, which has no comments). Unlike Flux, the harness substitutes every
file of the tree, not only those under a Kustomization with ``postBuild``; a
literal ``${...}`` must be escaped as ``$${...}``. Substitution never adds or
removes lines, so line numbers still point into the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NAME = re.compile(r"[_A-Za-z][_A-Za-z0-9]*")
DEFAULT_OPERATORS = (":=", ":-", "=", "-")


@dataclass(frozen=True)
class Problem:
    line: int  # 0-based line in the text
    message: str


def _expand(body: str, values: dict[str, str]) -> tuple[str | None, str | None]:
    """The value of ``${body}``, or (None, why not)."""
    match = NAME.match(body)
    if not match:
        return None, f"`${{{body}}}` is not a variable reference Flux accepts (names match [_A-Za-z][_A-Za-z0-9]*)"
    name, rest = match.group(0), body[match.end():]
    if rest == "":
        if name in values:
            return values[name], None
        return None, (
            f"variable `{name}` has no value and no default, which fails the Kustomization (Flux "
            f"substitutes strictly); write `${{{name}:=default}}` or set it in the Kustomization's "
            f"postBuild.substitute"
        )
    for operator in DEFAULT_OPERATORS:
        if rest.startswith(operator):
            return values.get(name, rest[len(operator):]), None
    return None, (
        f"`${{{body}}}` uses a substitution form the offline check does not implement; "
        f"use `${{{name}}}` or `${{{name}:=default}}`"
    )


def substitute(text: str, values: dict[str, str] | None = None) -> tuple[str, list[Problem]]:
    """``text`` with every variable substituted, and the problems found."""
    values = values or {}
    if "$" not in text:
        return text, []
    out_lines: list[str] = []
    problems: list[Problem] = []
    for number, line in enumerate(text.split("\n")):
        if "$" not in line or line.lstrip().startswith("#"):
            out_lines.append(line)
            continue
        out: list[str] = []
        i = 0
        while i < len(line):
            char = line[i]
            if char == "$" and line.startswith("$${", i):
                out.append("${")  # escaped: a literal ${
                i += 3
                continue
            if char == "$" and line.startswith("${", i):
                end = line.find("}", i + 2)
                if end < 0:
                    problems.append(Problem(number, "`${` without a closing `}` on the same line"))
                    out.append(line[i:])
                    break
                value, why = _expand(line[i + 2:end], values)
                if why is not None:
                    problems.append(Problem(number, why))
                    out.append(line[i:end + 1])
                else:
                    out.append(value)
                i = end + 1
                continue
            out.append(char)
            i += 1
        out_lines.append("".join(out))
    return "\n".join(out_lines), problems
