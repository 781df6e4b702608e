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


def test_broken_yaml(tree):
    edit(tree, "platform/base/settings.yaml", "  cluster: ", "  cluster: [unclosed ")
    assert_fails_at(yaml_parse.run(ctx(tree)), "platform/base/settings.yaml", 8, "does not parse")


@needs_flux_schemas
def test_unknown_field_in_a_flux_object(tree):
    edit(tree, "clusters/test/layers.yaml", "  prune: true\n", "  prune: true\n  prunne: true\n")
    line = line_of(tree, "clusters/test/layers.yaml", "prunne")
    assert_fails_at(schemas.run(ctx(tree)), "clusters/test/layers.yaml", line, "unknown field `prunne`")


def test_unknown_field_in_a_kubernetes_object(tree):
    edit(tree, "platform/apps/web.yaml", "          resources:", "          resourcez: {}\n          resources:")
    line = line_of(tree, "platform/apps/web.yaml", "resourcez")
    assert_fails_at(schemas.run(ctx(tree)), "platform/apps/web.yaml", line, "unknown field `resourcez`")


@needs_flux_schemas
def test_wrong_flux_api_version(tree):
    edit(tree, "clusters/test/layers.yaml", "kustomize.toolkit.fluxcd.io/v1\n", "kustomize.toolkit.fluxcd.io/v1beta2\n")
    assert_fails_at(schemas.run(ctx(tree)), "clusters/test/layers.yaml", 1, "not served by the pinned Flux")
    assert_fails_at(tree_policy.run(ctx(tree)), "clusters/test/layers.yaml", 1, "not one of the Flux API versions")


def test_wrong_kubernetes_api_version(tree):
    edit(tree, "platform/apps/web.yaml", "apiVersion: apps/v1", "apiVersion: apps/v1beta2")
    assert_fails_at(schemas.run(ctx(tree)), "platform/apps/web.yaml", 1, "serves Deployment as apps/v1")


def test_kind_without_schema(tree):
    (tree / "platform/base/widget.yaml").write_text("apiVersion: example.org/v1\nkind: Widget\nmetadata:\n  name: w\n")
    assert_fails_at(schemas.run(ctx(tree)), "platform/base/widget.yaml", 1, "no-schema.yaml")


@needs_kustomize
@needs_flux_schemas
def test_dependson_cycle(tree):
    edit(tree, "clusters/test/layers.yaml", "  interval: 10m0s\n", "  dependsOn:\n    - name: apps\n  interval: 10m0s\n")
    text = (tree / "clusters/test/layers.yaml").read_text().split("\n")
    lines = [n for n, line in enumerate(text, start=1) if "dependsOn" in line]
    findings = flux_refs.run(ctx(tree))
    assert len(lines) == 2
    assert any(f.startswith(f"clusters/test/layers.yaml:{n}:") and "dependsOn cycle" in f
               for f in failed(findings) for n in lines), failed(findings)
    assert all(f"clusters/test/layers.yaml:{n}" in " ".join(failed(findings)) for n in lines)
    assert any("flux-system/apps -> flux-system/base -> flux-system/apps" in f or
               "flux-system/base -> flux-system/apps -> flux-system/base" in f for f in failed(findings))


@needs_kustomize
def test_kustomization_path_that_does_not_exist(tree):
    edit(tree, "clusters/test/layers.yaml", "path: ./platform/apps", "path: ./platform/missing")
    line = line_of(tree, "clusters/test/layers.yaml", "./platform/missing")
    assert_fails_at(flux_refs.run(ctx(tree)), "clusters/test/layers.yaml", line, "does not exist")


@needs_kustomize
def test_dependson_a_kustomization_that_is_not_applied(tree):
    edit(tree, "clusters/test/layers.yaml", "    - name: base", "    - name: bsae")
    line = line_of(tree, "clusters/test/layers.yaml", "name: bsae")
    assert_fails_at(flux_refs.run(ctx(tree)), "clusters/test/layers.yaml", line, "depends on Kustomization flux-system/bsae")


@needs_kustomize
def test_sourceref_to_a_missing_source(tree):
    edit(tree, "clusters/test/layers.yaml", "    name: flux-system\n  path: ./platform/base",
         "    name: platform\n  path: ./platform/base")
    line = line_of(tree, "clusters/test/layers.yaml", "sourceRef")
    assert_fails_at(flux_refs.run(ctx(tree)), "clusters/test/layers.yaml", line, "GitRepository flux-system/platform")


@needs_kustomize
def test_kustomize_build_error(tree):
    edit(tree, "platform/apps/kustomization.yaml", "web.yaml", "gone.yaml")
    assert_fails_at(kustomize_build.run(ctx(tree)), "platform/apps/kustomization.yaml", 2, "kustomize build platform/apps")


@needs_kustomize
def test_variable_without_value_or_default(tree):
    edit(tree, "platform/base/settings.yaml", "${cluster_name:=none}", "${cluster_name} in ${region}")
    line = line_of(tree, "platform/base/settings.yaml", "${region}")
    findings = substitution.run(ctx(tree))
    assert_fails_at(findings, "platform/base/settings.yaml", line, "variable `region` has no value")
    assert not any("`cluster_name`" in f for f in failed(findings)), "cluster_name has a value in postBuild"


@needs_kustomize
def test_variable_under_a_kustomization_without_postbuild(tree):
    (tree / "platform/apps/web.yaml").write_text(DEPLOYMENT.replace("name: web\n", "name: ${app:=web}\n", 1))
    findings = substitution.run(ctx(tree))
    assert_fails_at(findings, "platform/apps/web.yaml", 4, "has no spec.postBuild")


@pytest.mark.parametrize(
    ("old", "new", "words"),
    [
        ("web:1.2.3", "web:latest", "uses `latest`"),
        ("web:1.2.3", "web", "has no tag"),
        ("            allowPrivilegeEscalation: false\n", "", "allowPrivilegeEscalation: false"),
        ("          resources:\n            requests: {cpu: 10m, memory: 16Mi}\n", "", "resources.requests"),
    ],
)
def test_workload_rules(tree, old, new, words):
    edit(tree, "platform/apps/web.yaml", old, new)
    line = line_of(tree, "platform/apps/web.yaml", "- name: web")
    if "latest" in words or "tag" in words:
        line = line_of(tree, "platform/apps/web.yaml", "image:")
    assert_fails_at(tree_policy.run(ctx(tree)), "platform/apps/web.yaml", line, words)


def test_flux_kustomization_without_wait(tree):
    edit(tree, "clusters/test/layers.yaml", "  wait: true\n", "")
    assert_fails_at(tree_policy.run(ctx(tree)), "clusters/test/layers.yaml", 6, "wait: true or healthChecks")


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
