"""Mutation tests of the manifest checks: a small, self-made tree in a
temporary directory passes; each mutation of it makes the right check fail at
the right file and line.

The tree here is written by the test, so these tests depend neither on the
real tree's content nor touch it.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from harness import tools
from harness.checks import flux_refs, kustomize_build, schemas, substitution, tree_policy, yaml_parse
from harness.model import PROJECT_ROOT, Context, Outcome

FLUX_SCHEMAS = (PROJECT_ROOT / ".." / "shared" / "flux" / "schemas").resolve()

GOTK_SYNC = """\
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: flux-system
  namespace: flux-system
spec:
  interval: 1m0s
  ref:
    branch: main
  url: ${git_url:=https://example.org/repo}
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: flux-system
  namespace: flux-system
spec:
  interval: 10m0s
  timeout: 5m0s
  path: ./clusters/test
  prune: true
  wait: true
  sourceRef:
    kind: GitRepository
    name: flux-system
  postBuild:
    substitute:
      cluster_name: test
"""

LAYERS = """\
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: base
  namespace: flux-system
spec:
  interval: 10m0s
  timeout: 5m0s
  prune: true
  wait: true
  sourceRef:
    kind: GitRepository
    name: flux-system
  path: ./platform/base
  postBuild:
    substitute:
      cluster_name: test
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: apps
  namespace: flux-system
spec:
  dependsOn:
    - name: base
  interval: 10m0s
  timeout: 5m0s
  prune: true
  wait: true
  sourceRef:
    kind: GitRepository
    name: flux-system
  path: ./platform/apps
"""

CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: default
data:
  cluster: ${cluster_name:=none}
"""

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      securityContext:
        runAsNonRoot: true
        seccompProfile: {type: RuntimeDefault}
      containers:
        - name: web
          image: ghcr.io/example/web:1.2.3
          resources:
            requests: {cpu: 10m, memory: 16Mi}
          securityContext:
            allowPrivilegeEscalation: false
            capabilities: {drop: [ALL]}
"""

FILES = {
    "versions.yaml": """\
flux:
  api:
    source: source.toolkit.fluxcd.io/v1
    kustomize: kustomize.toolkit.fluxcd.io/v1
kubernetes:
  minimum: "1.35"
  kind_node_image: kindest/node:v1.35.0@sha256:abc
""",
    "clusters/test/flux-system/gotk-sync.yaml": GOTK_SYNC,
    "clusters/test/flux-system/kustomization.yaml": "resources:\n  - gotk-sync.yaml\n",
    "clusters/test/layers.yaml": LAYERS,
    "platform/base/settings.yaml": CONFIGMAP,
    "platform/apps/kustomization.yaml": "resources:\n  - web.yaml\n",
    "platform/apps/web.yaml": DEPLOYMENT,
    "create/test.yaml": """\
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
    image: kindest/node:v1.35.0@sha256:abc
""",
}
for top in ("clusters", "platform", "apps", "create", "snippets"):
    FILES[f"{top}/README.md"] = f"# {top}\n"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    for rel, text in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    kustomize = tools.find("kustomize")
    if kustomize is not None:  # let the checks find the same kustomize in the copy
        (root / ".tools" / "bin").mkdir(parents=True)
        (root / ".tools" / "bin" / "kustomize").symlink_to(kustomize)
    return root


def ctx(root: Path) -> Context:
    return Context(root=root, blocks=[], flux_schemas=FLUX_SCHEMAS if FLUX_SCHEMAS.is_dir() else None)


def edit(root: Path, rel: str, old: str, new: str) -> None:
    path = root / rel
    text = path.read_text()
    assert old in text, f"mutation target {old!r} not in {rel}"
    path.write_text(text.replace(old, new, 1))


def line_of(root: Path, rel: str, needle: str) -> int:
    for number, line in enumerate((root / rel).read_text().split("\n"), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {rel}")


def failed(findings) -> list[str]:
    return [str(f) for f in findings if f.outcome is Outcome.FAILED]


def assert_fails_at(findings, rel: str, line: int, words: str) -> None:
    where = f"{rel}:{line}:"
    hits = [f for f in failed(findings) if f.startswith(where) and words in f]
    assert hits, f"expected a failure at {where} mentioning {words!r}; failures: {failed(findings)}"


needs_kustomize = pytest.mark.skipif(tools.find("kustomize") is None, reason=tools.missing_reason("kustomize"))
needs_flux_schemas = pytest.mark.skipif(not FLUX_SCHEMAS.is_dir(), reason=f"no Flux schemas at {FLUX_SCHEMAS}")


@needs_kustomize
@needs_flux_schemas
def test_the_unmutated_tree_passes(tree):
    for check in (yaml_parse, schemas, kustomize_build, substitution, flux_refs, tree_policy):
        assert failed(check.run(ctx(tree))) == [], check.__name__


SETTINGS, LAYERS_FILE, WEB = "platform/base/settings.yaml", "clusters/test/layers.yaml", "platform/apps/web.yaml"

# One edit (file, old text, new text, replaced once); the check that must
# fail; where: a line number, or text the failing line holds after the edit;
# words the failure says.
MUTATIONS = {
    "broken yaml": (SETTINGS, "  cluster: ", "  cluster: [unclosed ", yaml_parse, 8, "does not parse"),
    "unknown field in a flux object": pytest.param(
        LAYERS_FILE, "  prune: true\n", "  prune: true\n  prunne: true\n", schemas, "prunne",
        "unknown field `prunne`", marks=needs_flux_schemas),
    "unknown field in a kubernetes object": (
        WEB, "          resources:", "          resourcez: {}\n          resources:", schemas, "resourcez",
        "unknown field `resourcez`"),
    "wrong kubernetes api version": (
        WEB, "apiVersion: apps/v1", "apiVersion: apps/v1beta2", schemas, 1, "serves Deployment as apps/v1"),
    "kustomization path that does not exist": pytest.param(
        LAYERS_FILE, "path: ./platform/apps", "path: ./platform/missing", flux_refs, "./platform/missing",
        "does not exist", marks=needs_kustomize),
    "dependsOn a kustomization that is not applied": pytest.param(
        LAYERS_FILE, "    - name: base", "    - name: bsae", flux_refs, "name: bsae",
        "depends on Kustomization flux-system/bsae", marks=needs_kustomize),
    "sourceRef to a missing source": pytest.param(
        LAYERS_FILE, "    name: flux-system\n  path: ./platform/base", "    name: platform\n  path: ./platform/base",
        flux_refs, "sourceRef", "GitRepository flux-system/platform", marks=needs_kustomize),
    "kustomize build error": pytest.param(
        "platform/apps/kustomization.yaml", "web.yaml", "gone.yaml", kustomize_build, 2,
        "kustomize build platform/apps", marks=needs_kustomize),
    "variable under a kustomization without postBuild": pytest.param(
        WEB, "name: web\n", "name: ${app:=web}\n", substitution, 4, "has no spec.postBuild", marks=needs_kustomize),
    "flux kustomization without wait": (
        LAYERS_FILE, "  wait: true\n", "", tree_policy, 6, "wait: true or healthChecks"),
    "image tag latest": (WEB, "web:1.2.3", "web:latest", tree_policy, "image:", "uses `latest`"),
    "image without tag": (WEB, "web:1.2.3", "web", tree_policy, "image:", "has no tag"),
    "privilege escalation allowed": (
        WEB, "            allowPrivilegeEscalation: false\n", "", tree_policy, "- name: web",
        "allowPrivilegeEscalation: false"),
    "no resource requests": (
        WEB, "          resources:\n            requests: {cpu: 10m, memory: 16Mi}\n", "", tree_policy, "- name: web",
        "resources.requests"),
}


@pytest.mark.parametrize(("rel", "old", "new", "check", "line", "words"), list(MUTATIONS.values()), ids=list(MUTATIONS))
def test_mutation_fails_at_its_line(tree, rel, old, new, check, line, words):
    edit(tree, rel, old, new)
    if isinstance(line, str):
        line = line_of(tree, rel, line)
    assert_fails_at(check.run(ctx(tree)), rel, line, words)


@needs_flux_schemas
def test_wrong_flux_api_version(tree):
    edit(tree, LAYERS_FILE, "kustomize.toolkit.fluxcd.io/v1\n", "kustomize.toolkit.fluxcd.io/v1beta2\n")
    assert_fails_at(schemas.run(ctx(tree)), LAYERS_FILE, 1, "not served by the pinned Flux")
    assert_fails_at(tree_policy.run(ctx(tree)), LAYERS_FILE, 1, "not one of the Flux API versions")


def test_kind_without_schema(tree):
    (tree / "platform/base/widget.yaml").write_text("apiVersion: example.org/v1\nkind: Widget\nmetadata:\n  name: w\n")
    assert_fails_at(schemas.run(ctx(tree)), "platform/base/widget.yaml", 1, "no-schema.yaml")


@needs_kustomize
@needs_flux_schemas
def test_dependson_cycle(tree):
    edit(tree, LAYERS_FILE, "  interval: 10m0s\n", "  dependsOn:\n    - name: apps\n  interval: 10m0s\n")
    text = (tree / LAYERS_FILE).read_text().split("\n")
    lines = [n for n, line in enumerate(text, start=1) if "dependsOn" in line]
    findings = flux_refs.run(ctx(tree))
    assert len(lines) == 2
    assert any(f.startswith(f"{LAYERS_FILE}:{n}:") and "dependsOn cycle" in f
               for f in failed(findings) for n in lines), failed(findings)
    assert all(f"{LAYERS_FILE}:{n}" in " ".join(failed(findings)) for n in lines)
    assert any("flux-system/apps -> flux-system/base -> flux-system/apps" in f or
               "flux-system/base -> flux-system/apps -> flux-system/base" in f for f in failed(findings))


@needs_kustomize
def test_variable_without_value_or_default(tree):
    edit(tree, SETTINGS, "${cluster_name:=none}", "${cluster_name} in ${region}")
    line = line_of(tree, SETTINGS, "${region}")
    findings = substitution.run(ctx(tree))
    assert_fails_at(findings, SETTINGS, line, "variable `region` has no value")
    assert not any("`cluster_name`" in f for f in failed(findings)), "cluster_name has a value in postBuild"


def test_plaintext_secret_and_private_key(tree):
    (tree / "platform/base/secret.yaml").write_text(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  password: hunter2\n")
    key = "-----BEGIN OPENSSH " + "PRIVATE KEY-----"
    (tree / "snippets/id.txt").write_text(f"notes\n{key}\nAAAA\n")
    findings = tree_policy.run(ctx(tree))
    assert_fails_at(findings, "platform/base/secret.yaml", 5, "Secret in plain text")
    assert_fails_at(findings, "snippets/id.txt", 2, "a private key")


def test_missing_readme_and_kind_image_drift(tree):
    (tree / "apps/README.md").unlink()
    edit(tree, "create/test.yaml", "sha256:abc", "sha256:def")
    findings = tree_policy.run(ctx(tree))
    assert_fails_at(findings, "apps/README.md", 1, "apps/ has no README.md")
    assert_fails_at(findings, "create/test.yaml", 5, "is not versions.yaml kubernetes.kind_node_image")
