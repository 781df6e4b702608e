"""Check: what a page says about versions holds for the tree.

Prose that states which versions a cluster takes ("staging accepts any
``1.x``, production runs ``1.0.0``") goes stale when the tree's range or pin
moves. A page marks such a statement with an invisible comment on the line
above it, which says the same thing in a form the harness can test::

    <!-- versions: staging platform admits 1.0.0, 1.1.0 rejects 2.0.0; production platform pins 1.0.0 -->

Claims are separated by ``;``. Each names a cluster (a directory under
``clusters/``) and a source the cluster applies (its name, or ``Kind/name``
when two objects share the name), then one or more of:

- ``admits V...``: the source's range admits each version (a pinned source
  admits only its pin);
- ``rejects V...``: it admits none of them;
- ``pins V``: the source is pinned to that tag;
- ``range "R"``: the source follows exactly that range (spaces aside).

Comments inside code blocks are examples, not claims. Every version and
range a claim names must also appear in the text the
comment stands above (up to the next blank line), so that the comment and the
prose change together. Ranges are evaluated with the rules Flux uses
(``harness.masterminds_semver``), on what Flux applies on that cluster
(``flux_render``).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from harness import masterminds_semver as semver
from harness.checks import flux_render, version_ranges
from harness.model import Context, Finding, Location, Origin, Outcome

CHECK = "version-claims"
COMMENT = re.compile(r"^\s*<!--\s*versions:\s*(?P<body>.*?)\s*-->\s*$")
VERBS = ("admits", "rejects", "pins", "range")


@dataclass
class Claim:
    page: str
    line: int  # the comment's line
    cluster: str
    source: str
    verb: str
    value: str
    text: list[tuple[int, str]]  # the lines the comment stands above

    @property
    def where(self) -> Origin:
        """The line of the text that states the value (else the comment)."""
        mentions = [number for number, line in self.text if self.value in line]
        named = [number for number, line in self.text if self.value in line and self.cluster in line.lower()]
        return Origin(self.page, (named or mentions or [self.line])[0])


def parse_comment(page: str, number: int, body: str, text: list[tuple[int, str]]) -> tuple[list[Claim], list[str]]:
    """The claims of one comment, and what is wrong with it."""
    claims: list[Claim] = []
    errors: list[str] = []
    for part in (p.strip() for p in body.split(";")):
        if not part:
            continue
        try:
            words = shlex.split(part.replace(",", " "))
        except ValueError as error:
            errors.append(f"`{part}`: {error}")
            continue
        if len(words) < 4 or words[2] not in VERBS:
            errors.append(f"`{part}`: write CLUSTER SOURCE followed by {', '.join(VERBS)} and versions "
                          f"(`staging platform admits 1.1.0`)")
            continue
        cluster, source, verb = words[0], words[1], None
        for word in words[2:]:
            if word in VERBS:
                verb = word
                continue
            claims.append(Claim(page, number, cluster, source, verb, word, text))
    return claims, errors


def page_claims(root: Path, page: str) -> tuple[list[Claim], list[Finding]]:
    lines = (Path(root) / page).read_text(encoding="utf-8").split("\n")
    claims: list[Claim] = []
    problems: list[Finding] = []
    fence = None  # the fence of the code block the line is in (its examples are not claims)
    for index, line in enumerate(lines):
        stripped = line.strip()
        if fence is None and stripped.startswith(("```", "~~~")):
            fence = stripped[:3]
            continue
        if fence is not None:
            fence = None if stripped.startswith(fence) and stripped.strip(fence[0]) == "" else fence
            continue
        match = COMMENT.match(line)
        if not match:
            continue
        text: list[tuple[int, str]] = []
        for number in range(index + 1, len(lines)):
            if not lines[number].strip():
                if text:
                    break
                continue
            text.append((number + 1, lines[number]))
        found, errors = parse_comment(page, index + 1, match.group("body"), text)
        claims += found
        problems += [Finding(CHECK, Outcome.FAILED, Origin(page, index + 1), f"versions comment: {e}")
                     for e in errors]
    return claims, problems


def _source(render: flux_render.ClusterRender, name: str):
    """(object, its version field) of the source called ``name`` (or
    ``Kind/name``) on the cluster, or an error message."""
    kind, _, wanted = name.rpartition("/")
    found = [(o, version_ranges.version_field(o.data)) for o in render.objects
             if o.name == wanted and (not kind or o.kind == kind)]
    found = [(o, f) for o, f in found if f is not None]
    if not found:
        return None, f"{render.cluster} applies no source `{name}` with a range or a tag"
    if len({(o.kind, o.namespace) for o, _ in found}) > 1:
        kinds = ", ".join(sorted(f"{o.kind}/{o.name}" for o, _ in found))
        return None, f"`{name}` names several objects on {render.cluster} ({kinds}): write Kind/name"
    return found[0], None


def _holds(claim: Claim, field: version_ranges.VersionField) -> tuple[bool, str]:
    """Whether the claim holds, and what the tree says (for the message)."""
    value = claim.value
    if claim.verb == "range":
        said = f"follows `{field.text}`" if field.is_range else f"is pinned to `{field.text}`"
        return field.is_range and value.split() == field.text.split(), said
    if claim.verb == "pins":
        said = f"is pinned to `{field.text}`" if not field.is_range else f"follows the range `{field.text}`"
        return (not field.is_range) and _same(value, field.text), said
    if field.is_range:
        admitted = semver.parse_constraint(field.text).admits(value)
        said = f"follows `{field.text}`, which {'admits' if admitted else 'does not admit'} `{value}`"
    else:
        admitted = _same(value, field.text)
        said = f"is pinned to `{field.text}`"
    return admitted == (claim.verb == "admits"), said


def _same(a: str, b: str) -> bool:
    try:
        return semver.parse_version(a).compare(semver.parse_version(b)) == 0
    except semver.SemverError:
        return a == b


def run(ctx: Context) -> list[Finding]:
    root = Path(ctx.root).resolve()
    pages = [ctx.only_page] if ctx.only_page else sorted(str(p.relative_to(root)) for p in (root / "docs").rglob("*.md"))
    pages = [p for p in pages if (root / p).is_file() and "<!-- versions:" in (root / p).read_text(encoding="utf-8")]
    if not pages:
        return []
    renders = {version_ranges._cluster_name(c): r for c, r in flux_render.render_all(root).items()}
    findings: list[Finding] = []
    for page in pages:
        claims, problems = page_claims(root, page)
        findings += problems
        for claim in claims:
            said = f"the page says {claim.cluster}'s `{claim.source}` {claim.verb} `{claim.value}`"
            if claim.verb in ("admits", "rejects", "pins"):
                try:
                    semver.parse_version(claim.value)
                except semver.SemverError as error:
                    findings.append(Finding(CHECK, Outcome.FAILED, claim.where,
                                            f"{said}, but `{claim.value}` is not a version ({error})"))
                    continue
            if not any(claim.value in line for _, line in claim.text):
                findings.append(Finding(CHECK, Outcome.FAILED, Origin(claim.page, claim.line),
                                        f"{said}, but the text below the comment does not say `{claim.value}`: "
                                        f"change the comment with the text"))
                continue
            render = renders.get(claim.cluster)
            if render is None:
                findings.append(Finding(CHECK, Outcome.FAILED, Origin(claim.page, claim.line),
                                        f"{said}, but there is no cluster directory clusters/{claim.cluster}"))
                continue
            found, error = _source(render, claim.source)
            if found is None:
                findings.append(Finding(CHECK, Outcome.FAILED, Origin(claim.page, claim.line), f"{said}, but {error}"))
                continue
            obj, field = found
            tree_where = version_ranges.rendered_field_origin(root, obj, field, claim.cluster)
            if version_ranges.problem(field.text) if field.is_range else None:
                continue  # the semver check reports the range itself
            holds, tree_says = _holds(claim, field)
            if holds:
                findings.append(Finding(CHECK, Outcome.PASSED, Location(claim.where, tree_where), said))
            else:
                findings.append(Finding(
                    CHECK, Outcome.FAILED, Location(claim.where, tree_where),
                    f"{said}, but on {claim.cluster} {obj.kind} {obj.namespace}/{obj.name} {tree_says}: "
                    f"fix the page's text and its versions comment, or the tree"))
    return findings
