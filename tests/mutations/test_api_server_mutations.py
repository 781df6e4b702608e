"""Mutation tests of the API-server check: a small cluster tree, written by
the test into a scratch project with the site's configuration and a page
that shows its files, passes on the run's real etcd and kube-apiserver; each
mutation makes the API server (or the order model) reject an object at the
right tree file line, and the page line that shows it. Most of them are
mistakes no other check of the harness reports: a CRD's CEL rule, an
admission policy, an immutable field, an object applied before its
namespace or its CRD exists.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import apiserver, extract, tools
from harness.checks import api_server, references
from harness.model import PROJECT_ROOT, Context, Outcome
from harness.report import Report

from mutations import fixture

pytestmark = [
    pytest.mark.skipif(apiserver.missing_reason() is not None, reason=str(apiserver.missing_reason())),
    pytest.mark.skipif(tools.find("kustomize") is None or tools.find("flux") is None,
                       reason="needs kustomize and the flux CLI (nox -s tools -- kustomize flux)"),
]

PAGE = "docs/api-fixture.md"
LAYERS, NAMESPACE, CRD_FILE = "clusters/test/layers.yaml", "platform/base/namespace.yaml", "platform/base/widgets.yaml"
POLICY, WEB, WIDGET = "platform/base/policy.yaml", "platform/apps/web.yaml", "platform/apps/widget.yaml"

KUSTOMIZATION = """\
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: {name}
  namespace: flux-system
spec:
{depends}  interval: 10m0s
  timeout: 5m0s
  prune: true
  wait: true
  serviceAccountName: kustomize-controller
  sourceRef:
    kind: GitRepository
    name: flux-system
  path: ./platform/{name}
"""

FILES = {
    "clusters/test/flux-system/gotk-components.yaml": "# written by flux bootstrap\n",
    "clusters/test/flux-system/gotk-sync.yaml": """\
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: flux-system
  namespace: flux-system
spec:
  interval: 1m0s
  ref:
    branch: main
  url: https://example.org/fleet
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: flux-system
  namespace: flux-system
spec:
  interval: 10m0s
  path: ./clusters/test
  prune: true
  sourceRef:
    kind: GitRepository
    name: flux-system
  postBuild:
    substitute:
      cluster_name: test
""",
    "clusters/test/flux-system/kustomization.yaml": """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - gotk-components.yaml
  - gotk-sync.yaml
""",
    LAYERS: KUSTOMIZATION.format(name="base", depends="") + "---\n" + KUSTOMIZATION.format(
        name="apps", depends="  dependsOn:\n    - name: base\n"),
    NAMESPACE: """\
apiVersion: v1
kind: Namespace
metadata:
  name: web
  labels:
    example.org/policy: enforced
""",
    CRD_FILE: """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.org
spec:
  group: example.org
  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                size: {type: integer}
              x-kubernetes-validations:
                - rule: self.size <= 10
                  message: size must be at most 10
""",
    POLICY: """\
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: team-label
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
      - apiGroups: ["apps"]
        apiVersions: ["v1"]
        operations: ["CREATE", "UPDATE"]
        resources: ["deployments"]
  validations:
    - expression: "has(object.metadata.labels) && 'team' in object.metadata.labels"
      message: every Deployment names its team (label team)
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: team-label
spec:
  policyName: team-label
  validationActions: ["Deny"]
  matchResources:
    namespaceSelector:
      matchLabels:
        example.org/policy: enforced
""",
    WEB: """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: web
  labels:
    team: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: ghcr.io/example/web:1.2.3
""",
    WIDGET: """\
apiVersion: example.org/v1
kind: Widget
metadata:
  name: small
  namespace: web
spec:
  size: 3
""",
    PAGE: """\
# Widgets

```yaml title="platform/apps/widget.yaml"
--8<-- "platform/apps/widget.yaml"
```
""",
}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = fixture.make(tmp_path_factory.mktemp("api-fixture"))
    fixture.write(root, FILES)
    return root


@pytest.fixture
def tree(base: Path, tmp_path: Path) -> Path:
    return fixture.copy(base, tmp_path)


def findings(root: Path, page: bool = False) -> list[str]:
    """The check's failures; with ``page``, named at the page line where the
    page shows them (as the run's report names them)."""
    report = Report(extract.collect(root, page=PAGE) if page else [])
    found = report.add(api_server.run(Context(root=root, blocks=report.blocks)))
    return [str(f) for f in found if f.outcome is Outcome.FAILED]


def line_of(root: Path, rel: str, needle: str) -> int:
    for number, line in enumerate((root / rel).read_text().split("\n"), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {rel}")


def assert_fails_at(failures: list[str], where: str, *words: str) -> None:
    hits = [f for f in failures if f.startswith(where + ":") or f.startswith(where + " (")
            or f" ({where}):" in f]
    assert hits, f"expected a failure at {where}; failures: {failures}"
    for word in words:
        assert any(word in hit for hit in hits), f"no failure at {where} says {word!r}: {hits}"


def test_the_unmutated_tree_is_accepted(base):
    found = api_server.run(Context(root=base, blocks=[]))
    assert [str(f) for f in found if f.outcome is Outcome.FAILED] == []
    assert any(f.outcome is Outcome.PASSED and "clusters/test" in f.message for f in found), [str(f) for f in found]


def test_a_crd_cel_rule_rejects_an_object_shown_on_a_page(tree):
    fixture.edit(tree, WIDGET, "size: 3", "size: 20")
    failures = findings(tree, page=True)
    page_line = line_of(tree, PAGE, "--8<--")
    assert_fails_at(failures, f"{PAGE}:{page_line} ({WIDGET}:{line_of(tree, WIDGET, 'spec:')})",
                    "size must be at most 10", "Widget web/small")


def test_an_admission_policy_rejects_a_workload(tree):
    fixture.edit(tree, WEB, "  labels:\n    team: web\n", "")
    assert_fails_at(findings(tree), f"{WEB}:1", "every Deployment names its team",
                    f"the policy is {POLICY}:1")


def test_an_immutable_field_changed_by_the_second_apply(tree):
    """Bootstrap applies flux-system/ as committed; the root Kustomization then
    applies it again with its variables substituted: an immutable ConfigMap
    with a variable cannot take the second version."""
    fixture.write(tree, {"clusters/test/flux-system/settings.yaml": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: flux-system\n"
        "immutable: true\ndata:\n  cluster: ${cluster_name:=unknown}\n")})
    fixture.edit(tree, "clusters/test/flux-system/kustomization.yaml", "  - gotk-sync.yaml\n",
                 "  - gotk-sync.yaml\n  - settings.yaml\n")
    failures = findings(tree)
    assert_fails_at(failures, "clusters/test/flux-system/settings.yaml:7", "data: Forbidden: field is immutable",
                    "applied by Kustomization flux-system/flux-system")


def late(tree: Path, moved: str) -> None:
    """Move ``moved`` into a third layer, ``late``, that depends on apps."""
    text = (tree / moved).read_text()
    (tree / moved).unlink()
    fixture.write(tree, {f"platform/late/{Path(moved).name}": text})
    fixture.edit(tree, LAYERS, "  path: ./platform/apps\n", "  path: ./platform/apps\n---\n" + KUSTOMIZATION.format(
        name="late", depends="  dependsOn:\n    - name: apps\n"))


def test_an_object_applied_before_its_namespace_exists(tree):
    late(tree, NAMESPACE)
    failures = findings(tree)
    assert_fails_at(failures, f"{WEB}:1", "namespace web does not exist at this point of the order",
                    "It is created by Kustomization flux-system/late (platform/late/namespace.yaml:1), later")


def test_an_object_in_a_namespace_nothing_creates(tree):
    fixture.edit(tree, WEB, "namespace: web", "namespace: webb")
    assert_fails_at(findings(tree), f"{WEB}:1", "namespace webb does not exist",
                    "No Kustomization of this cluster creates it")


def test_an_object_applied_before_its_crd_is_installed(tree):
    late(tree, CRD_FILE)
    assert_fails_at(findings(tree, page=True), f"{PAGE}:{line_of(tree, PAGE, '--8<--')} ({WIDGET}:1)",
                    "serves no Widget in example.org/v1 at this point of the order",
                    "Its CRD comes from Kustomization flux-system/late (platform/late/widgets.yaml:1), later")


def test_a_layer_that_does_not_depend_on_what_creates_its_namespace(tree):
    """Accepted in the order the plan happens to take, but Flux may start
    apps first: nothing makes it wait for base."""
    fixture.edit(tree, LAYERS, "  dependsOn:\n    - name: base\n", "")
    failures = findings(tree, page=True)
    assert_fails_at(failures, f"{WEB}:1", "its namespace web is created by Kustomization flux-system/base",
                    "add `dependsOn: [{name: base}]` to Kustomization flux-system/apps")
    assert_fails_at(failures, f"{PAGE}:{line_of(tree, PAGE, '--8<--')} ({WIDGET}:1)",
                    "the CRD that serves Widget comes from Kustomization flux-system/base")


def test_a_field_of_the_wrong_type(tree):
    fixture.edit(tree, WEB, "replicas: 2", "replicas: two")
    assert_fails_at(findings(tree), f"{WEB}:{line_of(tree, WEB, 'replicas:')}", "the API server rejects it")


def test_an_unknown_field(tree):
    fixture.edit(tree, WEB, "  replicas: 2\n", "  replicas: 2\n  replica: 3\n")
    assert_fails_at(findings(tree), f"{WEB}:{line_of(tree, WEB, 'replica: 3')}", "field not declared in schema",
                    "fix its name or indentation")


def test_an_unknown_field_of_a_custom_resource(tree):
    """Server-side apply, as Flux uses it, refuses a field the CRD's schema
    does not declare (a plain apply would drop it)."""
    fixture.edit(tree, WIDGET, "  size: 3\n", "  size: 3\n  colour: red\n")
    assert_fails_at(findings(tree, page=True), f"{PAGE}:{line_of(tree, PAGE, '--8<--')} ({WIDGET}:{line_of(tree, WIDGET, 'colour:')})",
                    ".spec.colour: field not declared in schema")


def test_a_workload_whose_pods_pod_security_would_refuse(tree):
    """No pod is created here, but the API server warns about the
    Deployment's pod template in a namespace labelled for restricted Pod
    Security; the warning fails the check."""
    fixture.edit(tree, NAMESPACE, "    example.org/policy: enforced\n",
                 "    example.org/policy: enforced\n    pod-security.kubernetes.io/warn: restricted\n")
    assert_fails_at(findings(tree), f"{WEB}:1", 'would violate PodSecurity "restricted:latest"',
                    "the namespace's Pod Security refuses the pods")


def test_a_flux_system_that_does_not_build_with_the_real_components(tree):
    """A patch of flux-system/kustomization.yaml that the placeholder never
    meets: with the components bootstrap writes, the build fails, and so
    would bootstrap. One failure, at the kustomization; the references
    check only says what it then cannot know."""
    fixture.edit(tree, "clusters/test/flux-system/kustomization.yaml", "  - gotk-sync.yaml\n",
                 "  - gotk-sync.yaml\npatches:\n  - target: {kind: Deployment, name: kustomize-controller}\n"
                 "    patch: |-\n      - op: replace\n        path: /spec/template/spec/containers/3/image\n"
                 "        value: example.org/controller:1.0.0\n")
    assert_fails_at(findings(tree), "clusters/test/flux-system/kustomization.yaml:1",
                    "`kustomize build clusters/test/flux-system` fails, and so would bootstrap")
    said = [f for f in references.run(Context(root=tree, blocks=[])) if "bootstrap" in f.message]
    assert said and all(f.outcome is Outcome.SKIPPED and "(see [api-server])" in f.message for f in said), said


# A chart that installs CRDs: cert-manager from its sources (versions.yaml
# `charts:`), with the ClusterIssuer a later layer applies.
# The chart version the project's tree pins: its sources are the ones the
# offline tier fetched.
CERT_MANAGER_CHART = "oci://quay.io/jetstack/charts/cert-manager"


def _tree_pin() -> str:
    from toolchain.inputs import chart_pin

    return chart_pin(CERT_MANAGER_CHART, PROJECT_ROOT)


CERT_MANAGER = """\
apiVersion: source.toolkit.fluxcd.io/v1
kind: OCIRepository
metadata:
  name: cert-manager
  namespace: cert-manager
spec:
  interval: 12h0m0s
  url: oci://quay.io/jetstack/charts/cert-manager
  ref:
    tag: {version}
---
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: cert-manager
  namespace: cert-manager
spec:
  interval: 30m0s
  chartRef:
    kind: OCIRepository
    name: cert-manager
  values:
    crds:
      enabled: true
"""
CHART_FILES = {
    "platform/controllers/namespace.yaml": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: cert-manager\n",
    "platform/controllers/cert-manager.yaml": CERT_MANAGER,
    "platform/configs/issuer.yaml": ("apiVersion: cert-manager.io/v1\nkind: ClusterIssuer\nmetadata:\n"
                                     "  name: self-signed\nspec:\n  selfSigned: {}\n"),
}
CHARTS_LAYERS = "\n---\n" + KUSTOMIZATION.format(name="controllers", depends="") + "---\n" + KUSTOMIZATION.format(
    name="configs", depends="  dependsOn:\n    - name: controllers\n")
ISSUER = "platform/configs/issuer.yaml"


@pytest.fixture
def chart_tree(tree: Path) -> Path:
    from harness.checks import helm_charts

    helm = tools.find("helm")
    sources = helm_charts.chart_sources(tree).get("oci://quay.io/jetstack/charts/cert-manager")
    if helm is None or sources is None or helm_charts.module_dir(sources.module, _tree_pin()) is None:
        pytest.skip("needs helm and cert-manager's sources in the Go module cache (`nox -s docs-test` fetches them)")
    fixture.write(tree, {**CHART_FILES, "platform/controllers/cert-manager.yaml":
                         CERT_MANAGER.replace("{version}", _tree_pin())})
    fixture.edit(tree, LAYERS, "  path: ./platform/apps\n", "  path: ./platform/apps" + CHARTS_LAYERS)
    return tree


def test_a_charts_crds_come_from_what_it_renders_with_the_releases_values(chart_tree):
    """The CRDs a chart installs are what helm renders with the release's
    values: cert-manager's only with crds.enabled. Installed once the
    Kustomization that waits for the release is done, they serve the
    ClusterIssuer of the layer that depends on it; without the value, no
    CRD serves it."""
    assert findings(chart_tree) == []
    fixture.edit(chart_tree, "platform/controllers/cert-manager.yaml", "      enabled: true\n", "      enabled: false\n")
    assert_fails_at(findings(chart_tree), f"{ISSUER}:1", "serves no ClusterIssuer in cert-manager.io/v1",
                    "No CRD of this cluster serves it")


def test_a_layer_that_uses_a_chart_crd_its_dependency_does_not_wait_for(chart_tree):
    controllers = KUSTOMIZATION.format(name="controllers", depends="")
    fixture.edit(chart_tree, LAYERS, controllers, controllers.replace("  wait: true\n", ""))
    assert_fails_at(findings(chart_tree), f"{ISSUER}:1",
                    "Its CRD comes from the chart of HelmRelease cert-manager (platform/controllers/cert-manager.yaml:12)",
                    "set `wait: true` (or a health check for the release) on flux-system/controllers")
