"""Tree-policy rules about how Flux runs the tree (``tree_policy`` runs them):

- ``flux-system-layout``: every ``clusters/*/flux-system/kustomization.yaml``
  lists ``gotk-components.yaml`` and ``gotk-sync.yaml`` in ``resources``, and
  both files exist. On a fresh cluster ``flux bootstrap`` installs Flux by
  applying that kustomization.yaml; without gotk-components.yaml in it, no
  controller and no CRD gets installed.
- ``git-auth``: every GitRepository other than ``flux-system`` has a
  ``secretRef`` (a private repository or an ssh:// URL cannot be fetched
  without one).
- ``flux-timeouts``: a Flux Kustomization's timeout covers every attempt of
  each HelmRelease it applies (``flux_render`` says which): Kustomization
  timeout >= (retries + 1) x HelmRelease timeout, where retries is the larger
  of ``install`` and ``upgrade`` ``remediation.retries``. Defaults as the
  controllers apply them: a HelmRelease waits 5m; a Kustomization without
  ``timeout`` waits its interval minus 30s (at least 30s).
- ``substitution-quoting``: a ``${var}`` that makes up a whole YAML value
  yields whatever type its value reads as (``no`` a boolean, ``2025`` a
  number): kustomize drops quotes written around it before Flux substitutes,
  so the quotes have to come from substitution (``${quote}${var}${quote}``
  with ``quote: '"'``). Exempt: a default that is itself a boolean, number or
  null (the value is typed on purpose), and a default that is a URL (the
  variable holds URLs, which never read as anything but strings).
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from harness.checks import flux_render, go_duration, yaml_docs
from harness.model import Finding, Origin, Outcome

HELM_DEFAULT_TIMEOUT = 300.0
BOOTSTRAP_FILES = ("gotk-components.yaml", "gotk-sync.yaml")
WHOLE_VARIABLE = re.compile(r"^\$\{([_A-Za-z][_A-Za-z0-9]*)(?:(:?[=-])(.*))?\}$", re.DOTALL)
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _at(tree_file: yaml_docs.TreeFile, doc: yaml_docs.Doc, path: list) -> Origin:
    return tree_file.origin(yaml_docs.line_of(doc.data, path, doc.line))


# -- flux-system-layout ----------------------------------------------------------


def flux_system_layout(root: Path) -> list[Finding]:
    findings = []
    tree = yaml_docs.tree(root)
    for cluster in flux_render.cluster_dirs(root):
        rel = f"{cluster}/flux-system/kustomization.yaml"
        tree_file = tree.get(rel)
        docs = [d for d in tree_file.docs if isinstance(d.data, dict)] if tree_file else []
        if not docs:
            findings.append(Finding("flux-system-layout", Outcome.FAILED, Origin(rel, 1),
                                    f"{rel} is missing or empty: `flux bootstrap` installs Flux by applying it; "
                                    f"list {' and '.join(BOOTSTRAP_FILES)} in its `resources`"))
            continue
        doc = docs[0]
        resources = doc.data.get("resources") or []
        listed = {str(r).removeprefix("./") for r in resources} if isinstance(resources, list) else set()
        for name in BOOTSTRAP_FILES:
            if name not in listed:
                findings.append(Finding(
                    "flux-system-layout", Outcome.FAILED, _at(tree_file, doc, ["resources"]),
                    f"`resources` does not list {name}: on a fresh cluster `flux bootstrap` installs Flux by "
                    f"applying this kustomization.yaml, so it must list gotk-components.yaml (the controllers "
                    f"and CRDs) and gotk-sync.yaml (the root source and Kustomization)"))
            if not (Path(root) / cluster / "flux-system" / name).is_file():
                index = next((i for i, r in enumerate(resources) if str(r).removeprefix("./") == name), None)
                path = ["resources", index] if index is not None else ["resources"]
                findings.append(Finding(
                    "flux-system-layout", Outcome.FAILED, _at(tree_file, doc, path),
                    f"{cluster}/flux-system/{name} does not exist: commit it"
                    + (" (a comment-only placeholder that `flux bootstrap` replaces with the controllers "
                       "and CRDs of the Flux version it installs)" if name == "gotk-components.yaml" else "")))
    return findings


# -- git-auth ----------------------------------------------------------------------


def git_auth(root: Path) -> list[Finding]:
    findings = []
    for tree_file in yaml_docs.tree(root).values():
        for doc in tree_file.docs:
            data = doc.data
            if not (doc.is_object and data["kind"] == "GitRepository"
                    and str(data["apiVersion"]).startswith("source.toolkit.fluxcd.io/")):
                continue
            meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
            spec = data.get("spec") if isinstance(data.get("spec"), dict) else {}
            if meta.get("name") == "flux-system" or spec.get("secretRef"):
                continue
            findings.append(Finding(
                "git-auth", Outcome.FAILED, _at(tree_file, doc, ["spec"]),
                f"{doc.ident()} has no spec.secretRef: a private repository or an ssh:// URL cannot be "
                f"fetched without credentials; add `secretRef: {{name: flux-system}}` (the credentials "
                f"`flux bootstrap` creates) or a secret of its own"))
    return findings


# -- flux-timeouts -------------------------------------------------------------------


def _retries(spec: dict) -> int:
    values = []
    for action in ("install", "upgrade"):
        remediation = ((spec.get(action) or {}).get("remediation") or {}) if isinstance(spec.get(action), dict) else {}
        retries = remediation.get("retries") if isinstance(remediation, dict) else None
        values.append(retries if isinstance(retries, int) else 0)
    return -1 if any(v < 0 for v in values) else max(values)


def _ks_timeout(spec: dict) -> float | None:
    if "timeout" in spec:
        return go_duration.seconds(spec["timeout"])
    interval = go_duration.seconds(spec.get("interval", ""))
    return None if interval is None else max(interval - 30, 30)


def flux_timeouts(root: Path) -> list[Finding]:
    findings: list[Finding] = []
    seen: set[tuple[str, str]] = set()
    for render in flux_render.render_all(root).values():
        for issue in render.issues:
            if issue.skipped and ("skipped", "") not in seen:
                seen.add(("skipped", ""))
                findings.append(Finding("flux-timeouts", Outcome.SKIPPED, issue.where,
                                        f"what some Kustomizations apply is unknown: {issue.message}"))
        kustomizations = {f"{o.namespace}/{o.name}": o for o in render.objects
                          if o.kind == "Kustomization" and str(o.data.get("apiVersion", "")).startswith(
                              flux_render.KUSTOMIZE_GROUP + "/")}
        for obj in render.objects:
            if obj.kind != "HelmRelease" or obj.by not in kustomizations:
                continue
            ks = kustomizations[obj.by]
            ks_spec = ks.data.get("spec") or {}
            hr_spec = obj.data.get("spec") or {}
            where = ks.field(["spec", "timeout"] if "timeout" in ks_spec else ["spec"])
            hr_where = obj.field(["spec", "timeout"] if "timeout" in hr_spec else ["spec"])
            key = (str(where), str(hr_where))
            if key in seen:
                continue
            seen.add(key)
            ks_timeout = _ks_timeout(ks_spec)
            hr_timeout = go_duration.seconds(hr_spec["timeout"]) if "timeout" in hr_spec else HELM_DEFAULT_TIMEOUT
            retries = _retries(hr_spec)
            what = f"{render.cluster}: Kustomization {ks.name}"
            if ks_timeout is None or hr_timeout is None:
                findings.append(Finding("flux-timeouts", Outcome.FAILED, where if ks_timeout is None else hr_where,
                                        f"{what}: a timeout is not a Go duration (write 5m0s, 90s, 1h)"))
                continue
            if retries < 0:
                findings.append(Finding(
                    "flux-timeouts", Outcome.FAILED, hr_where,
                    f"HelmRelease {obj.namespace}/{obj.name} retries without limit (remediation.retries < 0): "
                    f"no timeout of Kustomization {ks.name} ({where}) covers that; set a number of retries"))
                continue
            needed = (retries + 1) * hr_timeout
            if ks_timeout < needed:
                findings.append(Finding(
                    "flux-timeouts", Outcome.FAILED, where,
                    f"{what} waits {go_duration.show(ks_timeout)}, but HelmRelease {obj.namespace}/{obj.name} "
                    f"({hr_where}) may take ({retries} retries + 1) x {go_duration.show(hr_timeout)} = "
                    f"{go_duration.show(needed)}: the health check fails before remediation ends; raise the "
                    f"Kustomization's timeout to at least {go_duration.show(needed)}, or lower the "
                    f"HelmRelease's timeout or retries"))
    return findings


# -- substitution-quoting -------------------------------------------------------------


def _scalars(node: yaml.Node):
    """Every scalar that is a mapping value or a sequence item."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(value, yaml.ScalarNode):
                yield key.value, value
            else:
                yield from _scalars(value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            if isinstance(item, yaml.ScalarNode):
                yield "-", item
            else:
                yield from _scalars(item)


def _typed(default: str) -> bool:
    tag = yaml.resolver.Resolver().resolve(yaml.ScalarNode, default, (True, False))
    return tag != "tag:yaml.org,2002:str"


def substitution_quoting(root: Path) -> list[Finding]:
    findings = []
    for tree_file in yaml_docs.tree(root).values():
        if "${" not in tree_file.raw or tree_file.error is not None:
            continue
        try:
            nodes = list(yaml.compose_all(tree_file.raw, Loader=_Loader))
        except yaml.YAMLError:
            continue  # the yaml-parse check reports it
        for node in nodes:
            if node is None:
                continue
            for key, scalar in _scalars(node):
                match = WHOLE_VARIABLE.match(scalar.value)
                if match is None:
                    continue
                name, operator, default = match.groups()
                if operator is not None and (_typed(default) or "://" in default):
                    continue
                quoted = " (the quotes around it here are dropped by kustomize before Flux substitutes)" \
                    if scalar.style in ("'", '"') else ""
                findings.append(Finding(
                    "substitution-quoting", Outcome.FAILED, tree_file.origin(scalar.start_mark.line),
                    f"`{scalar.value}` is the whole value of `{key}`{quoted}: a value such as `no` or `2025` "
                    f"becomes a boolean or a number; write `${{quote}}{scalar.value}${{quote}}` with "
                    f"`quote: '\"'` in the postBuild.substitute of the Kustomization that applies it"))
    return findings


NEEDS_RENDER = {"flux-timeouts"}
RULES = {
    "flux-system-layout": flux_system_layout,
    "git-auth": git_auth,
    "flux-timeouts": flux_timeouts,
    "substitution-quoting": substitution_quoting,
}
