"""Check: the cluster variables agree in the three places that name them.

A cluster variable is a ``${name}`` that a Flux Kustomization substitutes
from the ConfigMap ``flux-system/cluster-vars`` (its
``postBuild.substituteFrom``). Three places must agree on the list:

- the tree: every ``${name}`` a Kustomization substitutes (``flux_render``
  says which, on each cluster), with or without a default;
- ``snippets/cluster-vars.sh``: the keys of the ConfigMap it writes (the
  ``data:`` of its ``cluster-vars`` manifest);
- the table of the section "Cluster variables" of
  ``docs/design/reconciliation.md``, where the variables and their defaults
  are listed once.

A ``${name}`` the Kustomization defines itself in ``postBuild.substitute``
(``quote``, or the ``cluster_name`` that ``apps.yaml`` hands on) is not a
cluster variable. Any other must be written by the script and listed on the
page, and the Kustomization that substitutes it must read ``cluster-vars``:
substitution reaches one level, so a ``${name}`` under a Kustomization that
does not read the ConfigMap only ever takes its default. The other way round,
every variable the script writes or the page lists must be used by the tree.
Where the page gives the default as code, every default in the tree must be
that text; "the cluster's directory name" means the name of the cluster's
directory under ``clusters/``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from harness.checks import flux_render
from harness.model import Context, Finding, Origin, Outcome

CHECK = "cluster-vars"
CONFIGMAP = "cluster-vars"
SCRIPT = "snippets/cluster-vars.sh"
PAGE = "docs/design/reconciliation.md"
SECTION = "Cluster variables"
CLUSTER_NAME_DEFAULT = "the cluster's directory name"
KEY = re.compile(r"^\s+(?P<name>[_A-Za-z][_A-Za-z0-9]*):")
CODE = re.compile(r"^`([^`]+)`$")


@dataclass(frozen=True)
class Listed:
    name: str
    where: Origin
    default: str | None = None  # the page's default cell, as written


def written_by_script(root: Path) -> dict[str, Listed] | None:
    """The ``data`` keys of the cluster-vars ConfigMap in the script's
    manifest, with their lines; None when the script has no such manifest."""
    path = Path(root) / SCRIPT
    if not path.is_file():
        return None
    lines = path.read_text(encoding="utf-8").split("\n")
    named = next((n for n, line in enumerate(lines) if re.match(rf"^\s+name:\s*{CONFIGMAP}\s*$", line)), None)
    if named is None:
        return None
    data = next((n for n in range(named, len(lines)) if re.match(r"^data:\s*$", lines[n])), None)
    if data is None:
        return None
    found: dict[str, Listed] = {}
    for number in range(data + 1, len(lines)):
        match = KEY.match(lines[number])
        if not match:
            break
        found[match.group("name")] = Listed(match.group("name"), Origin(SCRIPT, number + 1))
    return found


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def listed_on_page(root: Path) -> dict[str, Listed] | None:
    """The rows of the first table under the page's "Cluster variables"
    heading whose header starts with ``variable``; None when there is none."""
    path = Path(root) / PAGE
    if not path.is_file():
        return None
    lines = path.read_text(encoding="utf-8").split("\n")
    start = next((n for n, line in enumerate(lines) if re.match(rf"^#+\s+{SECTION}\s*$", line)), None)
    if start is None:
        return None
    found: dict[str, Listed] = {}
    header: list[str] | None = None
    for number in range(start + 1, len(lines)):
        line = lines[number]
        if line.startswith("#"):
            break
        if not line.lstrip().startswith("|"):
            if header is not None and found:
                break
            continue
        cells = _cells(line)
        if header is None:
            if cells and cells[0].lower() == "variable":
                header = [c.lower() for c in cells]
            continue
        if set(line.strip()) <= set("|-: "):
            continue  # the separator row
        name = CODE.match(cells[0])
        if name is None:
            continue
        default = cells[header.index("default")] if "default" in header and len(cells) > header.index("default") \
            else None
        found[name.group(1)] = Listed(name.group(1), Origin(PAGE, number + 1), default)
    return found if header is not None else None


def reads_cluster_vars(ks: flux_render.Applied) -> bool:
    post_build = (ks.data.get("spec") or {}).get("postBuild") or {}
    return any(isinstance(ref, dict) and ref.get("kind") == "ConfigMap" and ref.get("name") == CONFIGMAP
               for ref in post_build.get("substituteFrom") or [])


def _inline(ks: flux_render.Applied) -> set[str]:
    post_build = (ks.data.get("spec") or {}).get("postBuild") or {}
    return {str(k) for k in (post_build.get("substitute") or {})}


def _other_sources(ks: flux_render.Applied) -> bool:
    """The Kustomization also substitutes from a source other than cluster-vars
    (whose variables the harness cannot know)."""
    post_build = (ks.data.get("spec") or {}).get("postBuild") or {}
    return any(isinstance(ref, dict) and not (ref.get("kind") == "ConfigMap" and ref.get("name") == CONFIGMAP)
               for ref in post_build.get("substituteFrom") or [])


def run(ctx: Context) -> list[Finding]:
    root = Path(ctx.root).resolve()
    renders = flux_render.render_all(root)
    script = written_by_script(root)
    page = listed_on_page(root)
    findings: list[Finding] = []
    if script is None:
        findings.append(Finding(CHECK, Outcome.FAILED, Origin(SCRIPT, 1),
                                f"{SCRIPT} writes no ConfigMap {CONFIGMAP} with a `data:` list: it is the procedure "
                                f"that gives a cluster its variables"))
    if page is None:
        findings.append(Finding(CHECK, Outcome.FAILED, Origin(PAGE, 1),
                                f"{PAGE} has no table of the cluster variables (a `| variable | ... |` table under "
                                f"the heading \"{SECTION}\")"))
    script, page = script or {}, page or {}
    used: set[str] = set()
    reported: set[tuple] = set()

    def fail(where: Origin, message: str) -> None:
        if (str(where), message) not in reported:
            reported.add((str(where), message))
            findings.append(Finding(CHECK, Outcome.FAILED, where, message))

    for render in renders.values():
        cluster = render.cluster.removeprefix("clusters/")
        for use in render.variables:
            ks = use.by
            if use.name in _inline(ks):
                continue  # defined by the Kustomization itself
            if _other_sources(ks) and use.name not in script:
                continue
            used.add(use.name)
            what = f"`${{{use.name}}}` (substituted by Kustomization {ks.namespace}/{ks.name}, {ks.origin})"
            if use.name not in script:
                fail(use.where, f"{what} is not a cluster variable: {SCRIPT} does not write it "
                                f"(its ConfigMap's data: {', '.join(script) or 'none'}); add it there and to the "
                                f"table on {PAGE}, or define it in the Kustomization's postBuild.substitute")
            if use.name not in page:
                fail(use.where, f"{what} is not listed in the cluster-variable table on {PAGE} "
                                f"(\"{SECTION}\"): add a row with what it is for and its default")
            if not reads_cluster_vars(ks):
                fail(use.where, f"{what}: Kustomization {ks.name} does not substitute from the ConfigMap "
                                f"{CONFIGMAP}, so the variable only ever takes its default (substitution reaches "
                                f"one level); hand the value on in its postBuild.substitute")
            listed = page.get(use.name)
            if listed is None or listed.default is None:
                continue
            code = CODE.match(listed.default)
            expected = code.group(1) if code else cluster if listed.default == CLUSTER_NAME_DEFAULT else None
            if expected is not None and use.default != expected:
                shown = "no default" if use.default is None else f"the default `{use.default}`"
                fail(use.where, f"{render.cluster}: `${{{use.name}}}` has {shown}, but the table on {PAGE} "
                                f"({listed.where}) gives its default as {listed.default}: make them agree")
    for name, listed in script.items():
        if name not in used:
            fail(listed.where, f"{SCRIPT} writes the cluster variable `{name}`, but no Kustomization of the tree "
                               f"substitutes it from {CONFIGMAP}: use it, or stop writing it")
    for name, listed in page.items():
        if name not in used:
            fail(listed.where, f"the table lists the cluster variable `{name}`, but no Kustomization of the tree "
                               f"substitutes it from {CONFIGMAP}: remove the row, or use it")
    if renders and not findings:
        findings.append(Finding(CHECK, Outcome.PASSED, Origin(SCRIPT, 1),
                                f"{', '.join(sorted(used))}: used by the tree, written by {SCRIPT}, listed on {PAGE}"))
    return findings
