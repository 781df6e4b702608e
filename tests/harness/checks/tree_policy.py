"""Check: the tree follows the project's rules.

- ``flux-api``: Flux objects use only the API versions versions.yaml
  ``flux.api`` lists (what the pinned Flux serves);
- ``image-tag``: no untagged or ``latest`` image, in workloads, kustomize
  ``images:`` and HelmRelease values;
- ``flux-kustomization``: every Flux Kustomization sets ``interval``,
  ``timeout`` and ``prune: true`` (the tree prunes everywhere: ``false`` fails,
  in a tree file, in ``gotk-sync.yaml`` and in a kustomize patch), and
  ``wait: true`` or ``healthChecks``;
- ``workload-security``: every container of a workload requests resources and
  runs restricted (runAsNonRoot, allowPrivilegeEscalation false, capabilities
  drop ALL, seccompProfile RuntimeDefault; pod or container level);
- ``plaintext-secret``: no Secret with data that is not SOPS-encrypted, and no
  private key or access token in any file of the tree or the pages, except
  files listed with a reason in ``tests/harness/schemas/allowed-secrets.yaml``;
- ``readme``: each top-level tree directory has a README.md;
- ``kind-node-image``: every kind config in create/ pins each node's image to
  versions.yaml ``kubernetes.kind_node_image``;
- ``kubernetes-versions``: versions.yaml ``kubernetes.minimum`` is one of
  ``kubernetes.supported`` (the minors the pinned Flux supports), and the kind
  node image runs that minimum;
- ``git-auth``, ``flux-timeouts``, ``substitution-quoting``, ``tenancy``,
  ``alerting``, ``signed-releases``: how Flux runs the tree (``flux_policy``).

What the API-server check and the ``references`` check catch is not a rule
here: a cluster's ``flux-system/kustomization.yaml`` that leaves out the
components bootstrap writes fails the API-server check (at its
``resources``), one that leaves out ``gotk-sync.yaml`` the ``flux-refs``
check, and a file it lists that does not exist the ``kustomize-build`` check.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

import yaml

import yamlload

from harness.checks import flux_policy, yaml_docs
from harness.model import Context, Finding, Origin, Outcome
from toolchain import pins

ALLOWED_SECRETS_FILE = Path(__file__).resolve().parents[1] / "schemas" / "allowed-secrets.yaml"
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"}
SECRET_PATTERNS = [
    (re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"), "a private key"),
    (re.compile(r"AGE-SECRET-KEY-1[0-9A-Z]{50,}"), "an age secret key"),
    (re.compile(r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36}\b"), "a GitHub token"),
    (re.compile(r"\bgithub_pat_[A-Za-z0-9_]{60,}\b"), "a GitHub token"),
    (re.compile(r"\bglpat-[A-Za-z0-9_-]{20}\b"), "a GitLab token"),
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), "an AWS access key"),
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b"), "a Slack token"),
]
SCANNED_DIRS = yaml_docs.TREE_DIRS + ("docs",)
PLACEHOLDER = "FILLED-IN-BY-TREE"


def _versions(root: Path) -> dict:
    return pins.versions(root)


@functools.lru_cache(maxsize=4)
def _allowed_secrets(path: str = str(ALLOWED_SECRETS_FILE)) -> dict[str, str]:
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as handle:
        data = yamlload.load(handle) or {}
    return {str(e["path"]): str(e["reason"]).strip() for e in data.get("files") or []}


def _objects(root: Path):
    for tree_file in yaml_docs.tree(root).values():
        for doc in tree_file.docs:
            if doc.is_object:
                yield tree_file, doc


def _at(tree_file: yaml_docs.TreeFile, doc: yaml_docs.Doc, path: list) -> Origin:
    return tree_file.origin(yaml_docs.line_of(doc.data, path, doc.line))


def _flux_api(root: Path) -> list[Finding]:
    served = set()
    for value in (_versions(root).get("flux", {}).get("api") or {}).values():
        served.update([value] if isinstance(value, str) else value)
    findings = []
    for tree_file, doc in _objects(root):
        api = str(doc.data["apiVersion"])
        if ".fluxcd.io/" in api and api not in served:
            findings.append(Finding("flux-api", Outcome.FAILED, _at(tree_file, doc, ["apiVersion"]),
                                    f"{doc.ident()}: `{api}` is not one of the Flux API versions versions.yaml "
                                    f"flux.api lists ({', '.join(sorted(served))})"))
    return findings


def _tag_problem(image: str) -> str | None:
    if "@sha256:" in image or "${" in image:
        return None
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"image `{image}` has no tag: pin a version (or a digest)"
    if last.rsplit(":", 1)[1] == "latest":
        return f"image `{image}` uses `latest`: pin a version (or a digest)"
    return None


def _pod_spec(data: dict) -> tuple[dict | None, list]:
    kind, spec = data.get("kind"), data.get("spec") or {}
    if kind == "Pod":
        return spec, ["spec"]
    if kind == "CronJob":
        return (((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}).get("spec"), \
            ["spec", "jobTemplate", "spec", "template", "spec"]
    return (spec.get("template") or {}).get("spec"), ["spec", "template", "spec"]


def _containers(pod: dict, base: list):
    for key in ("initContainers", "containers"):
        for index, container in enumerate(pod.get(key) or []):
            if isinstance(container, dict):
                yield container, base + [key, index]


def _values_images(values, path: list):
    """(image text, path) of image references in HelmRelease values."""
    if isinstance(values, dict):
        image = values.get("image")
        if isinstance(image, str):
            yield image, path + ["image"]
        for key in ("tag", "imageTag"):
            if values.get(key) == "latest":
                yield _tagged_image(values, path), path + [key]
        for key, value in values.items():
            if key != "image" or not isinstance(value, str):
                yield from _values_images(value, path + [key])
    elif isinstance(values, list):
        for index, value in enumerate(values):
            yield from _values_images(value, path + [index])


def _tagged_image(values: dict, path: list) -> str:
    """The image a chart's ``tag`` value goes with: the repository beside it
    (with its registry), or, when the values leave the repository to the
    chart, the chart's image named by where the tag is."""
    repository = values.get("repository") or values.get("image")
    if isinstance(repository, str) and repository:
        registry = values.get("registry")
        return f"{registry}/{repository}" if isinstance(registry, str) and registry else repository
    where = ".".join(str(p) for p in path[2:])  # after spec.values
    return f"the chart's default {where} image" if where else "the chart's default image"


def _images(root: Path) -> list[Finding]:
    findings = []
    for tree_file, doc in _objects(root):
        data = doc.data
        candidates = []
        if data["kind"] in WORKLOAD_KINDS:
            pod, base = _pod_spec(data)
            if isinstance(pod, dict):
                candidates += [(c.get("image"), p + ["image"]) for c, p in _containers(pod, base)]
        elif data["kind"] == "HelmRelease":
            candidates += list(_values_images((data.get("spec") or {}).get("values"), ["spec", "values"]))
        elif data["kind"] == "Kustomization" and str(data["apiVersion"]).startswith("kustomize.config.k8s.io"):
            for index, entry in enumerate(data.get("images") or []):
                if isinstance(entry, dict) and entry.get("newTag") == "latest":
                    candidates.append((f"{entry.get('name')}:latest", ["images", index, "newTag"]))
        for image, path in candidates:
            if not isinstance(image, str):
                findings.append(Finding("image-tag", Outcome.FAILED, _at(tree_file, doc, path),
                                        f"{doc.ident()}: a container without an image"))
                continue
            if path[-1] == "image":
                problem = _tag_problem(image)
            elif image.startswith("the chart's default"):
                values_path = ".".join(str(p) for p in path[2:])
                problem = (f"values {values_path} is `latest`, the tag of {image} (its repository is the "
                           f"chart's default): pin a version")
            else:
                problem = f"image `{image}:latest` uses `latest` (values {'.'.join(str(p) for p in path[2:])}): " \
                    "pin a version"
            if problem:
                findings.append(Finding("image-tag", Outcome.FAILED, _at(tree_file, doc, path),
                                        f"{doc.ident()}: {problem}"))
    return findings


PRUNES = ("every Flux Kustomization of this tree prunes: objects removed from git are deleted from the cluster "
          "(the reconciliation page says so, and deletionPolicy MirrorPrune follows it)")


def _flux_kustomizations(root: Path) -> list[Finding]:
    findings = []
    for tree_file, doc in _objects(root):
        data = doc.data
        if data["kind"] != "Kustomization" or not str(data["apiVersion"]).startswith("kustomize.toolkit.fluxcd.io/"):
            continue
        spec = data.get("spec") or {}
        if "prune" in spec and spec["prune"] is not True:
            findings.append(Finding("flux-kustomization", Outcome.FAILED, _at(tree_file, doc, ["spec", "prune"]),
                                    f"{doc.ident()}: `prune: {_shown(spec['prune'])}`"
                                    f"; {PRUNES}: set `prune: true`"))
        if tree_file.path.endswith("flux-system/gotk-sync.yaml"):
            # written by `flux bootstrap` (with prune: true); flux-system/kustomization.yaml patches the
            # other settings in
            if "prune" not in spec:
                findings.append(Finding("flux-kustomization", Outcome.FAILED, _at(tree_file, doc, ["spec"]),
                                        f"{doc.ident()}: set `prune: true` ({PRUNES})"))
            continue
        missing = [key for key in ("interval", "timeout", "prune") if key not in spec]
        if spec.get("wait") is not True and not spec.get("healthChecks"):
            missing.append("wait: true or healthChecks")
        if missing:
            findings.append(Finding("flux-kustomization", Outcome.FAILED, _at(tree_file, doc, ["spec"]),
                                    f"{doc.ident()}: set {', '.join(missing)} explicitly"))
    findings += _patched_prune(root)
    return findings


def _shown(value) -> str:
    return "false" if value is False else "true" if value is True else repr(value)


def _patched_prune(root: Path) -> list[Finding]:
    """A kustomize patch that sets a Flux Kustomization's ``spec.prune`` to
    anything but true (strategic merge or JSON 6902)."""
    findings = []
    for tree_file in yaml_docs.tree(root).values():
        if os.path.basename(tree_file.path) not in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
            continue
        doc = tree_file.docs[0] if tree_file.docs else None
        data = doc.data if doc is not None and isinstance(doc.data, dict) else {}
        for index, entry in enumerate(data.get("patches") or []):
            text = entry.get("patch") if isinstance(entry, dict) else None
            if not isinstance(text, str) or "prune" not in text:
                continue
            try:
                patch = yamlload.load(text)
            except yaml.YAMLError:
                continue  # kustomize-build reports it
            values = []
            if isinstance(patch, dict) and isinstance(patch.get("spec"), dict) and "prune" in patch["spec"]:
                values.append(patch["spec"]["prune"])
            elif isinstance(patch, list):
                values += [op.get("value") for op in patch if isinstance(op, dict) and op.get("path") == "/spec/prune"
                           and op.get("op") in ("add", "replace")]
            for value in values:
                if value is True:
                    continue
                line = yaml_docs.line_of(data, ["patches", index, "patch"], doc.line)
                offset = next((n for n, ln in enumerate(text.split("\n")) if "prune" in ln), 0)
                findings.append(Finding("flux-kustomization", Outcome.FAILED, tree_file.origin(line + 1 + offset),
                                        f"this patch sets a Flux Kustomization's spec.prune to `{_shown(value)}`; {PRUNES}: "
                                        f"leave prune at true"))
    return findings


def _restricted(pod: dict, container: dict) -> list[str]:
    pod_ctx = pod.get("securityContext") or {}
    ctx = container.get("securityContext") or {}
    missing = []
    if not ((container.get("resources") or {}).get("requests")):
        missing.append("resources.requests")
    if not (ctx.get("runAsNonRoot") is True or (pod_ctx.get("runAsNonRoot") is True and ctx.get("runAsNonRoot") is not False)):
        missing.append("runAsNonRoot: true")
    if ctx.get("allowPrivilegeEscalation") is not False:
        missing.append("allowPrivilegeEscalation: false")
    if "ALL" not in ((ctx.get("capabilities") or {}).get("drop") or []):
        missing.append("capabilities.drop: [ALL]")
    profile = (ctx.get("seccompProfile") or pod_ctx.get("seccompProfile") or {}).get("type")
    if profile not in ("RuntimeDefault", "Localhost"):
        missing.append("seccompProfile.type: RuntimeDefault")
    return missing


def _workloads(root: Path) -> list[Finding]:
    findings = []
    for tree_file, doc in _objects(root):
        if doc.data["kind"] not in WORKLOAD_KINDS:
            continue
        pod, base = _pod_spec(doc.data)
        if not isinstance(pod, dict):
            continue
        for container, path in _containers(pod, base):
            missing = _restricted(pod, container)
            if missing:
                findings.append(Finding(
                    "workload-security", Outcome.FAILED, _at(tree_file, doc, path),
                    f"{doc.ident()} container `{container.get('name')}`: missing {', '.join(missing)}",
                ))
    return findings


def _walk(node, key=None):
    """Every (key, value) pair in a nest of mappings and lists."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield k, v
            yield from _walk(v, k)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item, key)


def _helm_values(root: Path) -> list[Finding]:
    """A HelmRelease's values must ask its chart for the same workload settings
    the tree demands of its own workloads. Value keys differ from chart to
    chart, so this looks for the settings anywhere in `spec.values`: it cannot
    tell which workload of the chart a setting reaches (the cluster tier, with
    the namespaces' restricted Pod Security and the admission policy, can),
    but it fails when a release drops them."""
    findings = []
    for tree_file, doc in _objects(root):
        if doc.data.get("kind") != "HelmRelease" or not doc.data.get("apiVersion", "").startswith("helm.toolkit"):
            continue
        pairs = list(_walk((doc.data.get("spec") or {}).get("values") or {}))
        missing = []
        if not any(k == "requests" and isinstance(v, dict) and {"cpu", "memory"} <= set(v) for k, v in pairs):
            missing.append("resources.requests with cpu and memory")
        if not any(k == "runAsNonRoot" and v is True for k, v in pairs):
            missing.append("runAsNonRoot: true")
        if not any(k == "allowPrivilegeEscalation" and v is False for k, v in pairs):
            missing.append("allowPrivilegeEscalation: false")
        if not any(k == "drop" and isinstance(v, list) and "ALL" in v for k, v in pairs):
            missing.append("capabilities.drop: [ALL]")
        if not any(k == "seccompProfile" and isinstance(v, dict) and v.get("type") == "RuntimeDefault"
                   for k, v in pairs):
            missing.append("seccompProfile.type: RuntimeDefault")
        if missing:
            findings.append(Finding(
                "helm-values-security", Outcome.FAILED, _at(tree_file, doc, ["spec", "values"]),
                f"{doc.ident()}: its values set no {', '.join(missing)}; set them under the chart's "
                "resources and securityContext keys (see the chart's values.yaml)",
            ))
    return findings


def _scanned_files(root: Path):
    for top in SCANNED_DIRS:
        for dirpath, dirnames, filenames in os.walk(root / top):
            dirnames[:] = [d for d in dirnames if d not in yaml_docs.SKIP_DIRS]
            for name in sorted(filenames):
                yield os.path.relpath(os.path.join(dirpath, name), root)


def _secrets(root: Path) -> list[Finding]:
    findings = []
    allowed = _allowed_secrets()
    for tree_file, doc in _objects(root):
        data = doc.data
        if data["kind"] == "Secret" and (data.get("data") or data.get("stringData")) and "sops" not in data:
            if tree_file.path in allowed:
                continue
            findings.append(Finding("plaintext-secret", Outcome.FAILED,
                                    _at(tree_file, doc, ["stringData" if data.get("stringData") else "data"]),
                                    f"{doc.ident()}: a Secret in plain text; encrypt it with SOPS "
                                    f"(`sops --encrypt --in-place`) or remove it"))
    for rel in _scanned_files(root):
        try:
            text = (root / rel).read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # binary files (images) hold no text secrets
        for pattern, what in SECRET_PATTERNS:
            for match in pattern.finditer(text):
                where = Origin(rel, text.count("\n", 0, match.start()) + 1)
                if rel in allowed:
                    findings.append(Finding("plaintext-secret", Outcome.SKIPPED, where,
                                            f"{what}, allowed: {allowed[rel]}"))
                else:
                    findings.append(Finding("plaintext-secret", Outcome.FAILED, where,
                                            f"{what} in plain text; remove it (rotate it if it was real), or "
                                            f"if it is a documented throwaway key, list the file with a reason in "
                                            f"{os.path.relpath(ALLOWED_SECRETS_FILE, Path(__file__).resolve().parents[3])}"))
    return findings


def _readmes(root: Path) -> list[Finding]:
    findings = []
    for top in yaml_docs.TREE_DIRS:
        if not (root / top / "README.md").is_file():
            findings.append(Finding("readme", Outcome.FAILED, Origin(f"{top}/README.md", 1),
                                    f"{top}/ has no README.md: say what lives there and why"))
    return findings


def _kind_images(root: Path) -> list[Finding]:
    wanted = str(_versions(root).get("kubernetes", {}).get("kind_node_image", ""))
    findings = []
    configs = 0
    for tree_file, doc in _objects(root):
        if not (tree_file.path.startswith("create/") and doc.data["kind"] == "Cluster"
                and str(doc.data["apiVersion"]).startswith("kind.x-k8s.io/")):
            continue
        configs += 1
        nodes = doc.data.get("nodes") or []
        if not nodes:
            findings.append(Finding("kind-node-image", Outcome.FAILED, _at(tree_file, doc, ["kind"]),
                                    "kind config without `nodes:`: list the nodes, each with `image:`"))
        for index, node in enumerate(nodes):
            image = node.get("image") if isinstance(node, dict) else None
            if not wanted or wanted == PLACEHOLDER:
                problem = "versions.yaml kubernetes.kind_node_image is not set"
            elif image != wanted:
                problem = f"node image `{image}` is not versions.yaml kubernetes.kind_node_image `{wanted}`"
            else:
                continue
            findings.append(Finding("kind-node-image", Outcome.FAILED,
                                    _at(tree_file, doc, ["nodes", index, "image"]), problem))
    if configs == 0:
        findings.append(Finding("kind-node-image", Outcome.FAILED, Origin("create", 1),
                                "no kind config (kind: Cluster) in create/"))
    return findings


def _minor(version: str) -> tuple[int, ...] | None:
    match = re.match(r"^v?(\d+)\.(\d+)", version)
    return (int(match.group(1)), int(match.group(2))) if match else None


def _kubernetes_versions(root: Path) -> list[Finding]:
    """versions.yaml ``kubernetes``: ``supported`` lists the minors the pinned
    Flux supports; ``minimum`` and the kind node image's minor are among them,
    and the node image runs ``minimum``."""
    k8s = _versions(root).get("kubernetes") or {}
    where = Origin("versions.yaml", 1)
    supported = [str(v) for v in (k8s.get("supported") or [])]
    minimum = str(k8s.get("minimum") or "")
    if not supported:
        return [Finding("kubernetes-versions", Outcome.FAILED, where,
                        "versions.yaml kubernetes.supported is missing: list the Kubernetes minors the pinned "
                        "Flux supports, as its release notes state them")]
    findings = []
    if minimum not in supported:
        findings.append(Finding("kubernetes-versions", Outcome.FAILED, where,
                                f"versions.yaml kubernetes.minimum {minimum or '(unset)'} is not one of "
                                f"kubernetes.supported ({', '.join(supported)}): the tree would target a "
                                f"Kubernetes the pinned Flux does not support"))
    image = str(k8s.get("kind_node_image") or "")
    tag = image.split("@", 1)[0].rsplit(":", 1)[-1] if ":" in image else ""
    if _minor(tag) != _minor(minimum):
        findings.append(Finding("kubernetes-versions", Outcome.FAILED, where,
                                f"versions.yaml kubernetes.kind_node_image `{image}` does not run "
                                f"kubernetes.minimum {minimum}: the test clusters must run the minor the "
                                f"schemas are checked against"))
    return findings


RULES = {
    "flux-api": _flux_api,
    "kubernetes-versions": _kubernetes_versions,
    "image-tag": _images,
    "flux-kustomization": _flux_kustomizations,
    "workload-security": _workloads,
    "helm-values-security": _helm_values,
    "plaintext-secret": _secrets,
    "readme": _readmes,
    "kind-node-image": _kind_images,
    **flux_policy.RULES,
}


def run(ctx: Context) -> list[Finding]:
    root = Path(ctx.root).resolve()
    findings: list[Finding] = []
    for name, rule in RULES.items():
        found = rule(root)
        findings += found
        # A skip is an allowance for most rules, but a rule that needs what Flux
        # applies (flux_render) cannot pass when part of it could not be rendered.
        incomplete = name in flux_policy.NEEDS_RENDER and any(f.outcome is Outcome.SKIPPED for f in found)
        if not incomplete and not any(f.outcome is Outcome.FAILED for f in found):
            findings.append(Finding(name, Outcome.PASSED, Origin(".", 0), "the tree follows the rule"))
    return findings
