"""Tree-policy rules about how Flux runs the tree (``tree_policy`` runs them):

- ``git-auth``: every GitRepository other than ``flux-system`` has a
  ``secretRef`` (a private repository or an ssh:// URL cannot be fetched
  without one).
- ``flux-timeouts``: a Flux Kustomization's timeout covers every attempt of
  each HelmRelease it applies (``flux_render`` says which): Kustomization
  timeout >= (retries + 1) x HelmRelease timeout, where retries is the larger
  of ``install`` and ``upgrade`` ``remediation.retries``. Defaults as the
  controllers apply them: a HelmRelease waits 5m; a Kustomization without
  ``timeout`` waits its interval minus 30s (at least 30s).
- ``tenancy``: every cluster's ``flux-system/kustomization.yaml`` patches
  each flag of Flux's multi-tenancy lockdown into each controller that takes
  it (``LOCKDOWN_FLAGS``: ``--no-cross-namespace-refs=true``,
  ``--no-remote-bases=true``, ``--default-service-account=NAME``);
  every Kustomization and HelmRelease a cluster applies names its
  ``serviceAccountName``, and a Kustomization of ``./apps/...`` does not name a
  controller's own account;
- ``alerting``: a long-lived cluster whose ``platform`` source is an
  OCIRepository applies an Alert for errors of its Kustomizations (a
  sandbox, ``clusters/sandbox-*``, alerts no channel: the clone leaves the
  Alert out);
- ``signed-releases``: an OCIRepository named ``platform`` verifies the cosign
  signature of what it pulls (``spec.verify``);
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

import yamlload

from harness.checks import flux_render, go_duration, yaml_docs
from harness.model import Finding, Origin, Outcome

HELM_DEFAULT_TIMEOUT = 300.0
WHOLE_VARIABLE = re.compile(r"^\$\{([_A-Za-z][_A-Za-z0-9]*)(?:(:?[=-])(.*))?\}$", re.DOTALL)
_Loader = yamlload.Loader


def _at(tree_file: yaml_docs.TreeFile, doc: yaml_docs.Doc, path: list) -> Origin:
    return tree_file.origin(yaml_docs.line_of(doc.data, path, doc.line))


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


# -- tenancy ---------------------------------------------------------------------------

# Flux's multi-tenancy lockdown, as its documentation ("Multi-tenancy
# lockdown", the patches of a bootstrapped cluster's flux-system
# kustomization.yaml) and the Flux Operator's multitenant profile set it: each
# flag, and the controllers that must run with it. A flag ending in `=` takes
# a value (the account's name). The fourth part of that lockdown, the root
# Kustomization's own serviceAccountName, is the per-object rule below.
LOCKDOWN_FLAGS = {
    "--no-cross-namespace-refs=true": ("kustomize-controller", "helm-controller", "notification-controller",
                                       "image-reflector-controller", "image-automation-controller"),
    "--no-remote-bases=true": ("kustomize-controller",),
    "--default-service-account=": ("kustomize-controller", "helm-controller"),
}
FLUX_GROUPS = {"Kustomization": "kustomize.toolkit.fluxcd.io/", "HelmRelease": "helm.toolkit.fluxcd.io/"}
# The controllers' own accounts, which gotk-components.yaml (written by
# bootstrap) defines in flux-system; everything else must be in the tree.
CONTROLLER_ACCOUNTS = {"kustomize-controller", "helm-controller"}


def _patched_flags(doc: yaml_docs.Doc) -> dict[str, set[str]]:
    """flag -> the controllers a Deployment patch of this kustomization.yaml
    adds it to (the patch's target name is a regular expression, as in kustomize)."""
    found: dict[str, set[str]] = {}
    for patch in doc.data.get("patches") or []:
        if not isinstance(patch, dict):
            continue
        target = patch.get("target") or {}
        if target.get("kind") != "Deployment":
            continue
        text = str(patch.get("patch") or "")
        controllers = set()
        for controller in {c for cs in LOCKDOWN_FLAGS.values() for c in cs}:
            try:
                if re.fullmatch(str(target.get("name") or ".*"), controller):
                    controllers.add(controller)
            except re.error:
                continue
        for flag in LOCKDOWN_FLAGS:
            if re.search(r"value:\s*" + re.escape(flag) + (r"\S+" if flag.endswith("=") else r"\s*$"), text, re.M):
                found.setdefault(flag, set()).update(controllers)
    return found


def _is_flux(obj, kind: str) -> bool:
    return obj.kind == kind and str(obj.data.get("apiVersion", "")).startswith(FLUX_GROUPS[kind])


def tenancy(root: Path) -> list[Finding]:
    """Each cluster's flux-system/kustomization.yaml patches the multi-tenancy
    lockdown flags into the controllers; with them on, every Kustomization and
    HelmRelease the cluster applies names its service account, and an
    application layer (a Kustomization of ./apps/...) does not act as a
    controller."""
    findings: list[Finding] = []
    tree = yaml_docs.tree(root)
    for cluster, render in flux_render.render_all(root).items():
        rel = f"{cluster}/flux-system/kustomization.yaml"
        tree_file = tree.get(rel)
        docs = [d for d in tree_file.docs if isinstance(d.data, dict)] if tree_file else []
        if docs:
            flags = _patched_flags(docs[0])
            for flag, controllers in LOCKDOWN_FLAGS.items():
                missing = [c for c in controllers if c not in flags.get(flag, set())]
                if missing:
                    findings.append(Finding(
                        "tenancy", Outcome.FAILED, _at(tree_file, docs[0], ["patches"]),
                        f"no patch adds `{flag}{'NAME' if flag.endswith('=') else ''}` to "
                        f"{', '.join(missing)}: add a Deployment patch (op: add, path: "
                        f"/spec/template/spec/containers/0/args/-) as Flux's multi-tenancy lockdown documents"))
        for issue in render.issues:
            if issue.skipped:
                findings.append(Finding("tenancy", Outcome.SKIPPED, issue.where,
                                        f"what some Kustomizations apply is unknown: {issue.message}"))
                break
        for obj in render.objects:
            if not (_is_flux(obj, "Kustomization") or _is_flux(obj, "HelmRelease")):
                continue
            spec = obj.data.get("spec") or {}
            account = spec.get("serviceAccountName")
            if not account:
                findings.append(Finding(
                    "tenancy", Outcome.FAILED, obj.field(["spec"]),
                    f"{cluster}: {obj.kind} {obj.namespace}/{obj.name} names no spec.serviceAccountName: with "
                    f"--default-service-account it would act as the `default` account of {obj.namespace}, "
                    f"which may do nothing; name the account it applies as"))
            elif (obj.kind == "Kustomization" and str(spec.get("path", "")).lstrip("./").startswith("apps/")
                  and account in CONTROLLER_ACCOUNTS):
                findings.append(Finding(
                    "tenancy", Outcome.FAILED, obj.field(["spec", "serviceAccountName"]),
                    f"{cluster}: Kustomization {obj.namespace}/{obj.name} applies {spec.get('path')} as "
                    f"{account}, a controller's cluster-admin account; the application layer applies as a "
                    f"restricted account (platform/baseline/reconcilers.yaml)"))
    return findings


# -- alerting ----------------------------------------------------------------------------


def alerting(root: Path) -> list[Finding]:
    """A long-lived cluster that runs platform releases (its `platform`
    source is an OCIRepository: staging, production) applies an Alert for
    errors of its Kustomizations. Sandboxes are left out: snippets/
    sandbox-clone.sh drops the Alert of the cluster it copies, so that a
    sandbox's failures never reach that cluster's channel."""
    findings: list[Finding] = []
    for cluster, render in flux_render.render_all(root).items():
        if cluster.rsplit("/", 1)[-1].startswith("sandbox-"):
            continue
        platform = [o for o in render.objects if o.kind == "OCIRepository" and o.name == "platform"]
        if not platform:
            continue
        alerts = [o for o in render.objects if o.kind == "Alert"
                  and str(o.data.get("apiVersion", "")).startswith("notification.toolkit.fluxcd.io/")]
        covering = [a for a in alerts
                    if (a.data.get("spec") or {}).get("eventSeverity", "info") in ("info", "error")
                    and any(isinstance(s, dict) and s.get("kind") == "Kustomization"
                            for s in (a.data.get("spec") or {}).get("eventSources") or [])]
        if not covering:
            findings.append(Finding(
                "alerting", Outcome.FAILED, platform[0].origin,
                f"{cluster} follows platform releases but applies no Alert for failed Kustomizations: add an "
                f"Alert and its Provider to {cluster}/ (eventSeverity: error, eventSources: Kustomization *)"))
    return findings


# -- signed-releases ------------------------------------------------------------------


def signed_releases(root: Path) -> list[Finding]:
    """Every OCIRepository of platform releases (named ``platform``) verifies
    the release's cosign signature, with a key or a keyless identity."""
    findings = []
    for tree_file in yaml_docs.tree(root).values():
        for doc in tree_file.docs:
            data = doc.data
            if not (doc.is_object and data["kind"] == "OCIRepository"
                    and str(data["apiVersion"]).startswith("source.toolkit.fluxcd.io/")
                    and (data.get("metadata") or {}).get("name") == "platform"):
                continue
            verify = (data.get("spec") or {}).get("verify") or {}
            if verify.get("provider") == "cosign" and (verify.get("secretRef") or verify.get("matchOIDCIdentity")):
                continue
            findings.append(Finding(
                "signed-releases", Outcome.FAILED, _at(tree_file, doc, ["spec", "verify"] if verify else ["spec"]),
                f"{doc.ident()} applies platform releases without checking their signature: add spec.verify "
                f"(provider: cosign, and secretRef to the release key's public half, or matchOIDCIdentity for "
                f"keyless signing); snippets/platform-release.sh signs every release"))
    return findings


NEEDS_RENDER = {"flux-timeouts", "tenancy", "alerting"}
RULES = {
    "git-auth": git_auth,
    "flux-timeouts": flux_timeouts,
    "substitution-quoting": substitution_quoting,
    "tenancy": tenancy,
    "alerting": alerting,
    "signed-releases": signed_releases,
}
