"""Mutation tests of the manifest checks: a small, self-made tree in a
temporary directory passes; each mutation of it makes the right check fail at
the right file and line.

The tree here is written by the test, so these tests depend neither on the
real tree's content nor touch it.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from harness import flux_schemas, tools
from harness.checks import (api_server, applied_twice, cluster_vars, flux_refs, kustomize_build, kustomize_patches,
                            references, schemas, substitution, tree_policy, version_claims, version_ranges, yaml_parse)
from harness.model import PROJECT_ROOT, Context, Outcome

# The schemas of the pinned Flux, where docs-test made them (harness.flux_schemas).
FLUX_SCHEMAS = flux_schemas.generated_folder(PROJECT_ROOT)

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
  serviceAccountName: kustomize-controller
  sourceRef:
    kind: GitRepository
    name: flux-system
  postBuild:
    substitute:
      cluster_name: test
    substituteFrom:
      - kind: ConfigMap
        name: cluster-vars
        optional: true
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
  serviceAccountName: kustomize-controller
  sourceRef:
    kind: GitRepository
    name: flux-system
  path: ./platform/base
  postBuild:
    substitute:
      cluster_name: test
      quote: '"'
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
  serviceAccountName: kustomize-controller
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
  cluster: ${quote}${cluster_name:=none}${quote}
"""

RELEASE = """\
apiVersion: source.toolkit.fluxcd.io/v1
kind: OCIRepository
metadata:
  name: web-chart
  namespace: default
spec:
  interval: 10m0s
  url: oci://ghcr.io/example/charts/web
  ref:
    tag: 1.2.3
---
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: web
  namespace: default
spec:
  interval: 10m0s
  timeout: 2m0s
  serviceAccountName: web-reconciler
  chartRef:
    kind: OCIRepository
    name: web-chart
  install:
    remediation:
      retries: 1
  upgrade:
    remediation:
      retries: 1
  values:
    resources:
      requests: {cpu: 10m, memory: 32Mi}
    podSecurityContext:
      runAsNonRoot: true
      seccompProfile: {type: RuntimeDefault}
    securityContext:
      allowPrivilegeEscalation: false
      capabilities: {drop: [ALL]}
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

FLUX_SYSTEM_KUSTOMIZATION = """\
resources:
  - gotk-components.yaml
  - gotk-sync.yaml
patches:
  - target:
      kind: Deployment
      name: (kustomize-controller|helm-controller|notification-controller|image-reflector-controller|image-automation-controller)
    patch: |-
      - op: add
        path: /spec/template/spec/containers/0/args/-
        value: --no-cross-namespace-refs=true
  - target:
      kind: Deployment
      name: kustomize-controller
    patch: |-
      - op: add
        path: /spec/template/spec/containers/0/args/-
        value: --no-remote-bases=true
  - target:
      kind: Deployment
      name: (kustomize-controller|helm-controller)
    patch: |-
      - op: add
        path: /spec/template/spec/containers/0/args/-
        value: --default-service-account=default
"""

ACCOUNT = """\
apiVersion: v1
kind: ServiceAccount
metadata:
  name: web-reconciler
  namespace: default
"""

FILES = {
    "versions.yaml": """\
flux:
  api:
    source: source.toolkit.fluxcd.io/v1
    kustomize: kustomize.toolkit.fluxcd.io/v1
    helm: helm.toolkit.fluxcd.io/v2
kubernetes:
  supported: ["1.34", "1.35", "1.36"]
  minimum: "1.35"
  kind_node_image: kindest/node:v1.35.0@sha256:abc
""",
    "clusters/test/flux-system/gotk-sync.yaml": GOTK_SYNC,
    "clusters/test/flux-system/gotk-components.yaml": "# replaced by flux bootstrap\n",
    "clusters/test/flux-system/kustomization.yaml": FLUX_SYSTEM_KUSTOMIZATION,
    "platform/base/account.yaml": ACCOUNT,
    "clusters/test/layers.yaml": LAYERS,
    "platform/base/settings.yaml": CONFIGMAP,
    "platform/base/release.yaml": RELEASE,
    "platform/apps/kustomization.yaml": """\
resources:
  - web.yaml
patches:
  - target:
      kind: Deployment
      name: web
    patch: |-
      - op: add
        path: /spec/replicas
        value: 2
""",
    "platform/apps/web.yaml": DEPLOYMENT,
    "create/test.yaml": """\
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
    image: kindest/node:v1.35.0@sha256:abc
""",
}
FILES["snippets/cluster-vars.sh"] = """\
#!/usr/bin/env bash
cat <<YAML
apiVersion: v1
kind: ConfigMap
metadata:
  name: cluster-vars
  namespace: flux-system
data:
  git_url: "$GIT_URL"
YAML
"""
FILES["docs/design/reconciliation.md"] = """\
# Reconciliation

## Cluster variables

| variable | used for | default |
| --- | --- | --- |
| `git_url` | the repository | `https://example.org/repo` |
"""
FILES["docs/charts.md"] = """\
# Charts

<!-- versions: test web-chart pins 1.2.3 -->

The cluster runs the web chart `1.2.3`,
and nothing newer.
"""
for top in ("clusters", "platform", "apps", "create", "snippets"):
    FILES[f"{top}/README.md"] = f"# {top}\n"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "tree")


def write_tree(root: Path) -> Path:
    for rel, text in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / ".tools" / "bin").mkdir(parents=True)
    for name in ("kustomize", "flux"):  # let the checks find the same tools in the copy
        found = tools.find(name)
        if found is not None:
            (root / ".tools" / "bin" / name).symlink_to(found)
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
needs_flux = pytest.mark.skipif(tools.find("flux") is None, reason=tools.missing_reason("flux"))
needs_flux_schemas = pytest.mark.skipif(not FLUX_SCHEMAS.is_dir(), reason=flux_schemas.missing_reason(PROJECT_ROOT))


ALL_CHECKS = (yaml_parse, schemas, kustomize_build, kustomize_patches, substitution, flux_refs, references,
              applied_twice, cluster_vars, version_ranges, version_claims, tree_policy)


@needs_kustomize
@needs_flux_schemas
def test_the_unmutated_tree_passes(tree):
    for check in ALL_CHECKS:
        assert failed(check.run(ctx(tree))) == [], check.__name__


SETTINGS, LAYERS_FILE, WEB = "platform/base/settings.yaml", "clusters/test/layers.yaml", "platform/apps/web.yaml"
RELEASE_FILE, FLUX_SYSTEM = "platform/base/release.yaml", "clusters/test/flux-system/kustomization.yaml"

# One edit (file, old text, new text, replaced once); the check that must
# fail; where: a line number, or text the failing line holds after the edit;
# words the failure says.
MUTATIONS = {
    "broken yaml": (SETTINGS, "  cluster: ", "  cluster: [unclosed ", yaml_parse, 7, "does not parse"),
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
    "kustomize build error": pytest.param(
        "platform/apps/kustomization.yaml", "web.yaml", "gone.yaml", kustomize_build, 2,
        "kustomize build platform/apps", marks=needs_kustomize),
    "patch whose target selects nothing": pytest.param(
        "platform/apps/kustomization.yaml", "      name: web\n", "      name: wbe\n", kustomize_patches, "target:",
        "selects no resource of `kustomize build platform/apps`", marks=needs_kustomize),
    "a range Flux refuses": (
        RELEASE_FILE, "    tag: 1.2.3\n", '    semver: ">=1.2 && <2"\n', version_ranges, "semver:",
        "ref.semver `>=1.2 && <2` is not a version range Flux accepts: improper constraint"),
    "a range that admits nothing": (
        RELEASE_FILE, "    tag: 1.2.3\n", '    semver: ">=2.0.0 <1.0.0"\n', version_ranges, "semver:",
        "ref.semver `>=2.0.0 <1.0.0` admits no version at all"),
    "variable under a kustomization without postBuild": pytest.param(
        WEB, "name: web\n", "name: ${app:=web}\n", substitution, 4, "has no spec.postBuild", marks=needs_kustomize),
    "flux kustomization that does not prune": (
        LAYERS_FILE, "  prune: true\n", "  prune: false\n", tree_policy, "prune: false", "set `prune: true`"),
    "bootstrap's kustomization that does not prune": (
        "clusters/test/flux-system/gotk-sync.yaml", "  prune: true\n", "  prune: false\n", tree_policy, "prune: false",
        "every Flux Kustomization of this tree prunes"),
    "flux kustomization without wait": (
        LAYERS_FILE, "  wait: true\n", "", tree_policy, 6, "wait: true or healthChecks"),
    "image tag latest": (WEB, "web:1.2.3", "web:latest", tree_policy, "image:", "uses `latest`"),
    "image without tag": (WEB, "web:1.2.3", "web", tree_policy, "image:", "has no tag"),
    "chart value tag latest names the image": (
        RELEASE_FILE, "  values:\n", "  values:\n    redis:\n      tag: latest\n    image:\n      repository: "
        "ghcr.io/example/web\n      tag: latest\n", tree_policy, "  tag: latest",
        "values redis.tag is `latest`, the tag of the chart's default redis image"),
    "chart image tag latest names the repository": (
        RELEASE_FILE, "  values:\n", "  values:\n    image:\n      repository: ghcr.io/example/web\n      tag: latest\n",
        tree_policy, "  tag: latest", "image `ghcr.io/example/web:latest` uses `latest` (values image.tag)"),
    "privilege escalation allowed": (
        WEB, "            allowPrivilegeEscalation: false\n", "", tree_policy, "- name: web",
        "allowPrivilegeEscalation: false"),
    # bootstrap would install no controllers and no CRDs: the API-server
    # check plans bootstrap with the components it writes (no server needed)
    "flux-system kustomization without gotk-components.yaml": pytest.param(
        FLUX_SYSTEM, "  - gotk-components.yaml\n", "", api_server, "resources:",
        "`resources` does not list gotk-components.yaml: on a fresh cluster `flux bootstrap` installs Flux by "
        "applying this kustomization.yaml", marks=[needs_kustomize, needs_flux]),
    # nothing ties the cluster to its directory: what Flux applies stops at bootstrap
    "flux-system kustomization without gotk-sync.yaml": pytest.param(
        FLUX_SYSTEM, "  - gotk-sync.yaml\n", "", flux_refs, "resources:",
        "`resources` does not list gotk-sync.yaml, so clusters/test/flux-system holds no Flux Kustomization",
        marks=needs_kustomize),
    "kustomization timeout shorter than its helmrelease's attempts": pytest.param(
        LAYERS_FILE, "  timeout: 5m0s\n", "  timeout: 3m0s\n", tree_policy, "timeout: 3m0s",
        "(1 retries + 1) x 2m0s = 4m0s", marks=needs_kustomize),
    "quotes in the source around a whole-value variable": (
        SETTINGS, "${quote}${cluster_name:=none}${quote}", '"${cluster_name:=none}"', tree_policy, "cluster:",
        "dropped by kustomize"),
    "unquoted whole-value variable": (
        SETTINGS, "${quote}${cluster_name:=none}${quote}", "${cluster_name:=none}", tree_policy, "cluster:",
        "becomes a boolean or a number"),
    "minimum kubernetes the pinned flux does not support": (
        "versions.yaml", 'minimum: "1.35"', 'minimum: "1.33"', tree_policy, 1, "is not one of kubernetes.supported"),
    "kind node image on another minor than the minimum": (
        "versions.yaml", "kindest/node:v1.35.0@sha256:abc\n", "kindest/node:v1.34.2@sha256:abc\n", tree_policy, 1,
        "does not run kubernetes.minimum 1.35"),
    "helmrelease acting as its namespace's default account": pytest.param(
        RELEASE_FILE, "  serviceAccountName: web-reconciler\n", "", tree_policy, 17,
        "names no spec.serviceAccountName", marks=needs_kustomize),
    "controllers without the cross-namespace lockdown": (
        FLUX_SYSTEM, "        value: --no-cross-namespace-refs=true\n", "        value: --log-level=info\n",
        tree_policy, "patches:", "`--no-cross-namespace-refs=true` to"),
    "helm-controller without a default service account": (
        FLUX_SYSTEM, "      name: (kustomize-controller|helm-controller)\n", "      name: kustomize-controller\n",
        tree_policy, "patches:", "`--default-service-account=NAME` to helm-controller"),
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


@needs_kustomize
@needs_flux_schemas
def test_a_folder_that_held_another_tree_is_checked_for_the_tree_it_holds(tree):
    """Nothing the checks work out is kept by the folder alone: a tree
    written where another was (pytest gives a removed test folder's name to
    the next test) gets its own findings. Each edit keeps the file's size,
    and the folder holds the unmutated tree again at the end."""
    def found():
        return sorted(f for check in ALL_CHECKS for f in failed(check.run(ctx(tree))))

    def rewrite(rel: str | None = None, old: str = "", new: str = "") -> None:
        shutil.rmtree(tree)
        write_tree(tree)
        if rel is not None:
            assert len(old) == len(new), "a same-size edit: a stamp of sizes alone would not see it"
            edit(tree, rel, old, new)

    assert found() == []
    for rel, old, new, line, words in (("versions.yaml", 'minimum: "1.35"', 'minimum: "1.33"', 1,
                                        "is not one of kubernetes.supported"),
                                       (LAYERS_FILE, "  prune: true\n", "  prune: fals\n", "prune:",
                                        "prune")):
        rewrite(rel, old, new)
        line = line_of(tree, rel, line) if isinstance(line, str) else line
        assert any(f.startswith(f"{rel}:{line}:") and words in f for f in found()), (rel, found())
    rewrite()
    assert found() == [], "a finding of a tree the folder no longer holds"


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
    edit(tree, SETTINGS, "${quote}${cluster_name:=none}${quote}", "${cluster_name} in ${region}")
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


@needs_kustomize
def test_bootstrap_files_must_exist(tree):
    (tree / "clusters/test/flux-system/gotk-components.yaml").unlink()
    assert_fails_at(kustomize_build.run(ctx(tree)), FLUX_SYSTEM, line_of(tree, FLUX_SYSTEM, "- gotk-components.yaml"),
                    "resource `gotk-components.yaml`: no such file or directory: fix the entry or restore the file")


def test_git_repository_without_secret_ref(tree):
    (tree / "platform/base/source.yaml").write_text(
        "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n  name: other\n"
        "  namespace: flux-system\nspec:\n  interval: 1m0s\n  url: ssh://git@example.org/other\n")
    findings = tree_policy.run(ctx(tree))
    assert_fails_at(findings, "platform/base/source.yaml", 6, "has no spec.secretRef")
    assert not any("GitRepository flux-system/flux-system" in f for f in failed(findings)), "flux-system is exempt"


@needs_kustomize
def test_kustomization_timeout_defaults_to_interval_minus_30s(tree):
    edit(tree, LAYERS_FILE, "  timeout: 5m0s\n  prune: true\n  wait: true\n  serviceAccountName: kustomize-controller\n"
         "  sourceRef:\n    kind: GitRepository\n    name: flux-system\n  path: ./platform/base",
         "  prune: true\n  wait: true\n  serviceAccountName: kustomize-controller\n  sourceRef:\n"
         "    kind: GitRepository\n    name: flux-system\n  path: ./platform/base")
    edit(tree, LAYERS_FILE, "  interval: 10m0s\n", "  interval: 4m0s\n")  # the first: base's
    findings = tree_policy.run(ctx(tree))
    assert_fails_at(findings, LAYERS_FILE, 6, "Kustomization base waits 3m30s")  # spec: no timeout to point at


@needs_kustomize
def test_optional_substitute_from_alone_defines_no_variable(tree):
    """With no inline variable and only an optional ConfigMap that does not
    exist, Flux does not substitute: the default is applied literally."""
    edit(tree, LAYERS_FILE, "    substitute:\n      cluster_name: test\n      quote: '\"'\n",
         "    substituteFrom:\n      - kind: ConfigMap\n        name: cluster-vars\n        optional: true\n")
    findings = substitution.run(ctx(tree))
    assert_fails_at(findings, SETTINGS, 7, "substituteStrategy: Always")
    assert any("defines no variable" in f and "ConfigMap cluster-vars" in f for f in failed(findings))


@needs_kustomize
def test_substitute_strategy_always_substitutes_without_variables(tree):
    edit(tree, LAYERS_FILE, "    substitute:\n      cluster_name: test\n      quote: '\"'\n",
         "    substituteStrategy: Always\n")
    edit(tree, SETTINGS, "${quote}${cluster_name:=none}${quote}", "name-${cluster_name:=none}")
    assert failed(substitution.run(ctx(tree))) == []


@needs_kustomize
def test_object_with_substitution_disabled_is_left_alone(tree):
    literal = "  script: echo ${HOME}\n"
    edit(tree, WEB, "  name: web\n  namespace: default\n",
         "  name: web\n  namespace: default\n  annotations:\n    kustomize.toolkit.fluxcd.io/substitute: disabled\n")
    (tree / "platform/base/script.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: script\n  namespace: default\n  labels:\n"
        "    kustomize.toolkit.fluxcd.io/substitute: disabled\ndata:\n" + literal)
    assert failed(substitution.run(ctx(tree))) == []
    # the same object without the label: `${HOME}` has no value under base's postBuild
    edit(tree, "platform/base/script.yaml", "  labels:\n    kustomize.toolkit.fluxcd.io/substitute: disabled\n", "")
    assert_fails_at(substitution.run(ctx(tree)), "platform/base/script.yaml", 7, "variable `HOME` has no value")


@needs_kustomize
def test_more_helmrelease_retries_than_the_kustomization_waits_for(tree):
    edit(tree, RELEASE_FILE, "      retries: 1\n", "      retries: 3\n")  # install; upgrade keeps 1: the larger counts
    findings = tree_policy.run(ctx(tree))
    assert_fails_at(findings, LAYERS_FILE, 8, f"HelmRelease default/web ({RELEASE_FILE}:19) may take "
                    "(3 retries + 1) x 2m0s = 8m0s")


PLATFORM_OCI = """\
apiVersion: source.toolkit.fluxcd.io/v1
kind: OCIRepository
metadata:
  name: platform
  namespace: flux-system
spec:
  interval: 10m0s
  url: oci://ghcr.io/example/platform
  ref:
    tag: 1.0.0
"""

ALERTS = """\
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata:
  name: team
  namespace: flux-system
spec:
  type: generic
  address: https://alerts.example.org/hook
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata:
  name: failures
  namespace: flux-system
spec:
  providerRef:
    name: team
  eventSeverity: error
  eventSources:
    - kind: Kustomization
      name: "*"
"""


def test_platform_releases_must_be_verified(tree):
    (tree / "clusters/test/platform.yaml").write_text(PLATFORM_OCI)
    assert_fails_at(tree_policy.run(ctx(tree)), "clusters/test/platform.yaml", 6, "without checking their signature")
    edit(tree, "clusters/test/platform.yaml", "    tag: 1.0.0\n",
         "    tag: 1.0.0\n  verify:\n    provider: cosign\n    secretRef:\n      name: release-key\n")
    assert not [f for f in failed(tree_policy.run(ctx(tree))) if "[signed-releases]" in f]


@needs_kustomize
def test_a_cluster_on_platform_releases_needs_an_alert(tree):
    (tree / "clusters/test/platform.yaml").write_text(PLATFORM_OCI)
    assert_fails_at(tree_policy.run(ctx(tree)), "clusters/test/platform.yaml", 1, "applies no Alert")
    (tree / "clusters/test/alerts.yaml").write_text(ALERTS)
    assert not [f for f in failed(tree_policy.run(ctx(tree))) if "[alerting]" in f]


@needs_kustomize
@needs_flux
def test_a_flux_system_patch_whose_target_misses_every_real_controller(tree):
    """The lockdown patches are held to the components bootstrap writes
    (flux install --export of the pinned CLI), not skipped for the
    placeholder: a misspelt controller selects nothing there."""
    edit(tree, FLUX_SYSTEM, "      name: kustomize-controller\n", "      name: kustomize-controler\n")
    target = line_of(tree, FLUX_SYSTEM, "name: kustomize-controler") - 2
    assert_fails_at(kustomize_patches.run(ctx(tree)), FLUX_SYSTEM, target,
                    "its target (kind=Deployment, name=kustomize-controler) selects no resource of `kustomize build "
                    "clusters/test/flux-system`")
    edit(tree, FLUX_SYSTEM, "      name: kustomize-controler\n", "      name: kustomize-controller\n")
    assert failed(kustomize_patches.run(ctx(tree))) == []


def test_a_patch_that_turns_pruning_off(tree):
    edit(tree, FLUX_SYSTEM, "patches:\n", "patches:\n  - target:\n      kind: Kustomization\n"
         "      name: flux-system\n    patch: |-\n      - op: replace\n        path: /spec/prune\n        value: false\n")
    assert_fails_at(tree_policy.run(ctx(tree)), FLUX_SYSTEM, line_of(tree, FLUX_SYSTEM, "path: /spec/prune"),
                    "sets a Flux Kustomization's spec.prune to `false`")


@needs_kustomize
def test_an_object_applied_by_two_kustomizations(tree):
    """The Deployment copied into base: applied by base and by apps."""
    (tree / "platform/base/web.yaml").write_text(DEPLOYMENT)
    findings = applied_twice.run(ctx(tree))
    assert_fails_at(findings, "platform/base/web.yaml", 1, "Deployment default/web (apps) is applied by Kustomization "
                    "flux-system/base (from platform/base/web.yaml:1) and by Kustomization flux-system/apps "
                    "(from platform/apps/web.yaml:1)")
    assert len(failed(findings)) == 1, failed(findings)


SCRIPT, PAGE = "snippets/cluster-vars.sh", "docs/design/reconciliation.md"


@needs_kustomize
def test_a_cluster_variable_the_script_does_not_write_nor_the_page_list(tree):
    edit(tree, LAYERS_FILE, "  name: base\n", "  name: base\n  annotations:\n    region: in-${region:=eu}\n")
    findings = cluster_vars.run(ctx(tree))
    line = line_of(tree, LAYERS_FILE, "${region:=eu}")
    assert_fails_at(findings, LAYERS_FILE, line, "`${region}` (substituted by Kustomization flux-system/flux-system, "
                    "clusters/test/flux-system/gotk-sync.yaml:12) is not a cluster variable: "
                    "snippets/cluster-vars.sh does not write it")
    assert_fails_at(findings, LAYERS_FILE, line, f"is not listed in the cluster-variable table on {PAGE}")


@needs_kustomize
def test_a_cluster_variable_under_a_kustomization_that_does_not_read_cluster_vars(tree):
    edit(tree, SETTINGS, "  cluster: ", "  url: at-${git_url:=https://example.org/repo}\n  cluster: ")
    assert_fails_at(cluster_vars.run(ctx(tree)), SETTINGS, 7, "Kustomization base does not substitute from the "
                    "ConfigMap cluster-vars, so the variable only ever takes its default")


@needs_kustomize
def test_variables_written_or_listed_but_never_used_and_a_default_that_disagrees(tree):
    edit(tree, SCRIPT, '  git_url: "$GIT_URL"\n', '  git_url: "$GIT_URL"\n  zone: "$ZONE"\n')
    edit(tree, PAGE, "| `git_url` | the repository | `https://example.org/repo` |",
         "| `git_url` | the repository | `https://example.org/other` |\n| `zone` | the zone | `a` |")
    findings = cluster_vars.run(ctx(tree))
    assert_fails_at(findings, SCRIPT, 10, "writes the cluster variable `zone`, but no Kustomization")
    assert_fails_at(findings, PAGE, 8, "the table lists the cluster variable `zone`, but no Kustomization")
    assert_fails_at(findings, "clusters/test/flux-system/gotk-sync.yaml", 10,
                    f"has the default `https://example.org/repo`, but the table on {PAGE} ({PAGE}:7) gives its "
                    "default as `https://example.org/other`")


def promotion_clusters(tree: Path, staging_ref: str, production_ref: str) -> None:
    """clusters/staging and clusters/production, each with its own source app."""
    for name, ref in (("staging", staging_ref), ("production", production_ref)):
        for rel in ("gotk-sync.yaml", "gotk-components.yaml", "kustomization.yaml"):
            text = (tree / "clusters/test/flux-system" / rel).read_text()
            target = tree / f"clusters/{name}/flux-system/{rel}"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text.replace("./clusters/test", f"./clusters/{name}"))
        (tree / f"clusters/{name}/source.yaml").write_text(
            "apiVersion: source.toolkit.fluxcd.io/v1\nkind: OCIRepository\nmetadata:\n  name: app\n"
            f"  namespace: flux-system\nspec:\n  interval: 10m0s\n  url: oci://ghcr.io/example/app\n  ref:\n    {ref}\n")


@needs_kustomize
def test_production_pins_a_release_staging_admits(tree):
    promotion_clusters(tree, 'semver: ">=1.0.0 <2.0.0"', 'tag: "1.4.0"')
    assert failed(version_ranges.run(ctx(tree))) == []
    promotion_clusters(tree, 'semver: ">=1.0.0 <2.0.0"', 'tag: "2.0.0"')
    assert_fails_at(version_ranges.run(ctx(tree)), "clusters/production/source.yaml", 10,
                    "production: OCIRepository flux-system/app pins `2.0.0`, and staging's range `>=1.0.0 <2.0.0` "
                    "(clusters/staging/source.yaml:10) does not admit it")


@needs_kustomize
def test_a_page_states_a_version_the_tree_no_longer_pins(tree):
    edit(tree, RELEASE_FILE, "    tag: 1.2.3\n", "    tag: 1.2.4\n")
    expected = (f"docs/charts.md:5 ({RELEASE_FILE}:10): [version-claims] the page says test's `web-chart` pins "
                "`1.2.3`, but on test OCIRepository default/web-chart is pinned to `1.2.4`")
    found = failed(version_claims.run(ctx(tree)))
    assert any(f.startswith(expected) for f in found), found


@needs_kustomize
def test_a_page_whose_text_and_versions_comment_disagree(tree):
    edit(tree, "docs/charts.md", "chart `1.2.3`", "chart `1.3.0`")
    assert_fails_at(version_claims.run(ctx(tree)), "docs/charts.md", 3,
                    "the text below the comment does not say `1.2.3`")


@needs_kustomize
def test_a_kustomize_failure_is_reported_once_without_temporary_paths(tree):
    """A missing resource of a base that an overlay builds on: one failure, at
    the base's entry, in the tree's own paths; the Flux checks only skip."""
    (tree / "platform/overlay").mkdir()
    (tree / "platform/overlay/kustomization.yaml").write_text("resources:\n  - ../apps\n")
    edit(tree, "platform/apps/kustomization.yaml", "  - web.yaml\n", "  - wbe.yaml\n")
    findings = [*kustomize_build.run(ctx(tree)), *flux_refs.run(ctx(tree))]
    assert failed(findings) == [
        "platform/apps/kustomization.yaml:2: [kustomize-build] `kustomize build platform/apps` failed: resource "
        "`wbe.yaml`: no such file or directory: fix the entry or restore the file"], failed(findings)
    skips = [str(f) for f in findings if f.outcome is Outcome.SKIPPED]
    assert skips and all("see [kustomize-build]" in f for f in skips), skips
    assert str(tree) not in " ".join(str(f) for f in findings)


def test_a_chart_version_range_flux_refuses(tree):
    (tree / "platform/base/cache.yaml").write_text(
        "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: cache\n  namespace: default\n"
        "spec:\n  interval: 10m0s\n  chart:\n    spec:\n      chart: redis\n      version: \">=7.0.0 || <=>8\"\n"
        "      sourceRef:\n        kind: HelmRepository\n        name: charts\n")
    assert_fails_at(version_ranges.run(ctx(tree)), "platform/base/cache.yaml", 11,
                    "HelmRelease default/cache chart.spec.version `>=7.0.0 || <=>8` is not a version range Flux "
                    "accepts: improper constraint: ' <=>8'")
