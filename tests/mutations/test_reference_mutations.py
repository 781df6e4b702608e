"""Mutation tests of the ``references`` check: a small cluster tree (one
cluster, a platform and an application layer, a chart, a procedure in
snippets/, and a page that shows the tree's files) passes; each mutation
makes the check fail at the tree file line of the field and at the page
line that shows it, saying what is missing.

Most classes here were caught by no rule before the check: a Kustomization
acting as an account the cluster never gets, a HelmRelease's values from a
ConfigMap nobody makes, a RoleBinding to a role or an account that does not
exist, an Alert naming a Provider of another namespace, a Certificate (made
by a chart, from the release's values) whose ClusterIssuer does not exist,
a reference the controllers' lockdown refuses, the default service account
a flag names, a Secret that a procedure no longer makes.

The mutations of one run are made together in one copy of the tree (they
touch different fields, and each failure is asserted at its own line), and
none adds or removes a line, so the page's blocks, extracted once from the
unmutated tree, map every line of every copy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness import extract, tools
from harness.checks import helm_charts, references
from harness.model import PROJECT_ROOT, Context, Finding, Outcome
from harness.report import shown_on_pages

from mutations import fixture

PAGE = "docs/references.md"
PLATFORM, ALERTS, ACCOUNTS = "clusters/test/platform.yaml", "clusters/test/alerts.yaml", "platform/accounts.yaml"
RELEASE, PREPARE = "apps/release.yaml", "snippets/prepare.sh"
FLUX_SYSTEM = "clusters/test/flux-system/kustomization.yaml"

FILES = {
    "clusters/test/flux-system/gotk-components.yaml": "# replaced by flux bootstrap\n",
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
  secretRef:
    name: flux-system
  url: https://example.org/repo
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
  serviceAccountName: kustomize-controller
  sourceRef:
    kind: GitRepository
    name: flux-system
""",
    FLUX_SYSTEM: """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - gotk-components.yaml
  - gotk-sync.yaml
patches:
  - target:
      kind: Deployment
      name: (kustomize-controller|helm-controller|notification-controller)
    patch: |-
      - op: add
        path: /spec/template/spec/containers/0/args/-
        value: --no-cross-namespace-refs=true
  - target:
      kind: Deployment
      name: (kustomize-controller|helm-controller)
    patch: |-
      - op: add
        path: /spec/template/spec/containers/0/args/-
        value: --default-service-account=default
  - target:
      kind: Deployment
      name: kustomize-controller
    patch: |-
      - op: add
        path: /spec/template/spec/containers/0/args/-
        value: --log-level=info
""",
    "clusters/test/kustomization.yaml": """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - flux-system
  - platform.yaml
  - alerts.yaml
""",
    PLATFORM: """\
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: platform
  namespace: flux-system
spec:
  interval: 10m0s
  path: ./platform
  prune: true
  serviceAccountName: kustomize-controller
  sourceRef:
    kind: GitRepository
    name: flux-system
  postBuild:
    substituteFrom:
      - kind: ConfigMap
        name: cluster-vars
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: apps
  namespace: flux-system
spec:
  dependsOn:
    - name: platform
  interval: 10m0s
  path: ./apps
  prune: true
  serviceAccountName: apps
  sourceRef:
    kind: GitRepository
    name: flux-system
  healthChecks:
    - apiVersion: helm.toolkit.fluxcd.io/v2
      kind: HelmRelease
      name: web
      namespace: web
  postBuild:
    substituteFrom:
      - kind: ConfigMap
        name: apps-vars
        optional: true
""",
    ALERTS: """\
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata:
  name: team
  namespace: flux-system
spec:
  type: generic
  address: https://alerts.example.org/hook
  secretRef:
    name: alerts-webhook
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
      name: apps
""",
    "platform/kustomization.yaml": """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - namespaces.yaml
  - accounts.yaml
  - issuer.yaml
""",
    "platform/namespaces.yaml": """\
apiVersion: v1
kind: Namespace
metadata:
  name: web
""",
    ACCOUNTS: """\
apiVersion: v1
kind: ServiceAccount
metadata:
  name: apps
  namespace: flux-system
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: web-reconciler
  namespace: web
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: web-reconciler
  namespace: web
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: admin
subjects:
  - kind: ServiceAccount
    name: apps
    namespace: flux-system
  - kind: ServiceAccount
    name: web-reconciler
    namespace: web
""",
    "platform/issuer.yaml": """\
apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata:
  name: self-signed
spec:
  selfSigned: {}
""",
    "apps/kustomization.yaml": """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - repository.yaml
  - values.yaml
  - release.yaml
""",
    "apps/repository.yaml": """\
apiVersion: source.toolkit.fluxcd.io/v1
kind: OCIRepository
metadata:
  name: podinfo
  namespace: web
spec:
  interval: 10m0s
  url: oci://ghcr.io/stefanprodan/charts/podinfo
  ref:
    semver: ">=6.0.0 <7.0.0"
  layerSelector:
    mediaType: application/vnd.cncf.helm.chart.content.v1.tar+gzip
    operation: copy
""",
    "apps/values.yaml": """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-values
  namespace: web
data:
  values.yaml: |
    replicaCount: 2
""",
    RELEASE: """\
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: web
  namespace: web
spec:
  interval: 10m0s
  releaseName: podinfo
  serviceAccountName: web-reconciler
  chartRef:
    kind: OCIRepository
    name: podinfo
  valuesFrom:
    - kind: ConfigMap
      name: web-values
  values:
    certificate:
      create: true
      issuerRef:
        kind: ClusterIssuer
        name: self-signed
      dnsNames:
        - podinfo.web.svc
    tls:
      enabled: true
    serviceAccount:
      enabled: true
""",
    "snippets/flux-bootstrap.sh": """\
#!/usr/bin/env bash
set -euo pipefail
flux bootstrap git --url "$URL" --path clusters/test
""",
    PREPARE: """\
#!/usr/bin/env bash
# What whoever creates the cluster runs before bootstrap.
set -euo pipefail
kubectl apply --server-side -f - <<YAML
apiVersion: v1
kind: ConfigMap
metadata:
  name: cluster-vars
  namespace: flux-system
data:
  region: "$REGION"
YAML
printf 'apiVersion: v1\\nkind: Secret\\nmetadata:\\n  name: alerts-webhook\\n  namespace: flux-system\\ndata:\\n  address: %s\\n' \\
  "$(printf '%s' "$URL" | base64)" | kubectl apply -f -
""",
    PAGE: """\
# References

```yaml title="clusters/test/platform.yaml"
--8<-- "clusters/test/platform.yaml"
```

```yaml title="clusters/test/alerts.yaml"
--8<-- "clusters/test/alerts.yaml"
```

```yaml title="platform/accounts.yaml"
--8<-- "platform/accounts.yaml"
```

```yaml title="apps/release.yaml"
--8<-- "apps/release.yaml"
```

```yaml title="clusters/test/flux-system/kustomization.yaml"
--8<-- "clusters/test/flux-system/kustomization.yaml"
```
""",
}
# The page line of each file's include.
SHOWN_AT = {PLATFORM: 4, ALERTS: 8, ACCOUNTS: 12, RELEASE: 16, FLUX_SYSTEM: 20}
CHART = "oci://ghcr.io/stefanprodan/charts/podinfo"


def _missing() -> str | None:
    """Why the tree's sources cannot all be read here (the test is skipped)."""
    for tool in ("kustomize", "flux", "helm"):
        if tools.find(tool) is None:
            return tools.missing_reason(tool)
    sources = helm_charts.chart_sources(PROJECT_ROOT).get(CHART)
    if sources is None or helm_charts.module_dir(sources.module, str(sources.module_version)) is None:
        return f"the sources of the chart {CHART} are not in the Go module cache (`nox -s docs-test` fetches them)"
    return None


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tree, with the project's site configuration (the page is read as
    the site renders it) and versions.yaml (its pins of the charts' sources).
    Skipped, with the reason, where a source of the cluster cannot be read
    (asked here rather than at collection, which every worker repeats)."""
    missing = _missing()
    if missing is not None:
        pytest.skip(missing)
    root = tmp_path_factory.mktemp("references") / "tree"
    root.mkdir()
    for name in fixture.SITE_FILES:
        shutil.copyfile(PROJECT_ROOT / name, root / name)
    for name in fixture.SITE_DIRS:
        shutil.copytree(PROJECT_ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    fixture.write(root, FILES)
    kustomize = tools.find("kustomize")
    (root / ".tools" / "bin").mkdir(parents=True)
    (root / ".tools" / "bin" / "kustomize").symlink_to(kustomize)
    return root


@pytest.fixture(scope="module")
def blocks(base: Path):
    problems: list = []
    found = extract.collect(base, problems=problems, page=PAGE)
    assert not problems, problems
    return found


def mutated(base: Path, tmp_path: Path, edits: list[tuple[str, str, str]], keep_lines: bool = True) -> Path:
    root = fixture.copy(base, tmp_path)
    shutil.copytree(base / ".tools", root / ".tools", symlinks=True)
    for rel, old, new in edits:
        assert not keep_lines or old.count("\n") == new.count("\n"), f"{rel}: a mutation keeps the lines"
        fixture.edit(root, rel, old, new)
    return root


def check(root: Path, blocks) -> list[Finding]:
    return shown_on_pages(references.run(Context(root=root, blocks=[])), blocks)


def failed(findings: list[Finding]) -> list[str]:
    return [str(f) for f in findings if f.outcome is Outcome.FAILED]


def line_of(root: Path, rel: str, needle: str) -> int:
    """The line of ``rel`` that holds ``needle``; ``"a > b"``: the first line
    holding ``b`` after the line that holds ``a``."""
    after, separator, wanted = needle.partition(" > ")
    after, wanted = (after, wanted) if separator else ("", needle)
    started = not after
    for number, line in enumerate((root / rel).read_text(encoding="utf-8").split("\n"), start=1):
        if not started:
            started = after in line
        elif wanted in line:
            return number
    raise AssertionError(f"{needle!r} not in {rel}")


def expect(findings: list[Finding], root: Path, rel: str, needle: str, *words: str) -> str | None:
    """Why the failure expected at the line of ``rel`` holding ``needle`` is
    not there (None when it is), at ``PAGE:line (rel:line)`` when the page
    shows the file."""
    line = line_of(root, rel, needle)
    where = f"{PAGE}:{SHOWN_AT[rel]} ({rel}:{line}): " if rel in SHOWN_AT else f"{rel}:{line}: "
    hits = [f for f in failed(findings) if f.startswith(where) and all(w in f for w in words)]
    return None if hits else f"no failure at {where.rstrip(': ')} saying {words}"


def test_the_unmutated_tree_resolves_every_reference_from_every_source(base, blocks):
    findings = check(base, blocks)
    assert failed(findings) == []
    assert not [str(f) for f in findings if f.outcome is Outcome.SKIPPED]
    passed = " ".join(f.message for f in findings if f.outcome is Outcome.PASSED)
    # Each source was needed: the chart (its Deployment's service account),
    # bootstrap (kustomize-controller, the Secret flux-system), the procedure
    # (cluster-vars, alerts-webhook), Kubernetes (the ClusterRole admin), and
    # what cert-manager makes from the chart's Certificate (podinfo-tls).
    for source in ("bootstrap", "chart", "kubernetes", "made", "procedure", "tree"):
        assert f" {source}" in passed, f"no reference resolved from {source}: {passed}"
    assert "optional, absent" in passed, "the optional ConfigMap apps-vars is counted, not failed"


def file_line(rel: str, needle: str) -> int:
    """The line of the unmutated ``rel`` that holds ``needle``."""
    return next(n for n, line in enumerate(FILES[rel].split("\n"), start=1) if needle in line)


LOCKDOWN_AT = f"{FLUX_SYSTEM}:{file_line(FLUX_SYSTEM, '--no-cross-namespace-refs')}"
DEFAULT_ACCOUNT_AT = f"{FLUX_SYSTEM}:{file_line(FLUX_SYSTEM, '--default-service-account')}"

# (file, old text, new text) of each mutation, and the failure it must cause:
# (file, text of the line it is at, words it says). Each keeps its lines.
ONE_RUN = [
    # a source the cluster never has
    ((PLATFORM, "    name: flux-system\n  postBuild", "    name: flux-systen\n  postBuild"),
     (PLATFORM, "name: flux-systen", "spec.sourceRef names GitRepository flux-system/flux-systen",
      "Did you mean GitRepository flux-system/flux-system")),
    # a dependency that is not applied
    ((PLATFORM, "    - name: platform\n", "    - name: platfrom\n"),
     (PLATFORM, "name: platfrom", "spec.dependsOn[] names Kustomization flux-system/platfrom")),
    # a Kustomization acting as an account the cluster never gets
    ((PLATFORM, "  serviceAccountName: apps\n", "  serviceAccountName: apps-deployer\n"),
     (PLATFORM, "apps-deployer", "spec.serviceAccountName names ServiceAccount flux-system/apps-deployer")),
    # a health check of an object that is not applied
    ((PLATFORM, "      name: web\n      namespace: web\n", "      name: webb\n      namespace: web\n"),
     (PLATFORM, "name: webb", "spec.healthChecks[] names HelmRelease web/webb")),
    # values from a ConfigMap nobody makes
    ((RELEASE, "      name: web-values\n", "      name: web-settings\n"),
     (RELEASE, "name: web-settings", "spec.valuesFrom[] names ConfigMap web/web-settings")),
    # a RoleBinding to an account and to a role that do not exist
    ((ACCOUNTS, "    name: web-reconciler\n    namespace: web\n", "    name: web-deployer\n    namespace: web\n"),
     (ACCOUNTS, "name: web-deployer", "subjects[] names ServiceAccount web/web-deployer")),
    ((ACCOUNTS, "  name: admin\n", "  name: administrator\n"),
     (ACCOUNTS, "name: administrator", "roleRef names ClusterRole administrator", "Kubernetes itself")),
    # a Certificate the chart renders from the values, for a ClusterIssuer that does not exist
    ((RELEASE, "        name: self-signed\n", "        name: selfsigned\n"),
     (RELEASE, "name: selfsigned", "Certificate web/podinfo (rendered by the chart podinfo of HelmRelease web/web",
      "spec.issuerRef names ClusterIssuer selfsigned", "Did you mean ClusterIssuer self-signed")),
    # an Alert naming a Provider of another namespace
    ((ALERTS, "  name: team\n  namespace: flux-system\n", "  name: team\n  namespace: web\n"),
     (ALERTS, "providerRef: > name: team", "spec.providerRef names Provider flux-system/team",
      "Provider web/team exists",
      "always names one in the referring object's namespace")),
    # an event source in another namespace: it exists, and the lockdown refuses it
    ((ALERTS, "    - kind: Kustomization\n      name: apps\n",
      "    - {kind: HelmRelease, name: web,\n       namespace: web}\n"),
     (ALERTS, "kind: HelmRelease", "spec.eventSources[] names HelmRelease web/web, in another namespace",
      "notification-controller runs with --no-cross-namespace-refs=true", f"({LOCKDOWN_AT})")),
]


def test_each_reference_the_cluster_never_has_fails_at_its_field_and_page_line(base, blocks, tmp_path):
    root = mutated(base, tmp_path, [edit for edit, _ in ONE_RUN])
    findings = check(root, blocks)
    missing = [expect(findings, root, rel, needle, *words) for _, (rel, needle, *words) in ONE_RUN]
    assert [m for m in missing if m] == [], "\n".join(failed(findings))


FLAGS_AND_PROCEDURES = [
    # the default service account the controllers' flag names, for a
    # Kustomization that names none
    ((FLUX_SYSTEM, "--default-service-account=default", "--default-service-account=tenant"), None),
    ((PLATFORM, "  serviceAccountName: apps\n", "  # acts as the default account\n"),
     (PLATFORM, "name: apps > spec:", "Kustomization flux-system/apps: names no spec.serviceAccountName, so "
      "kustomize-controller uses --default-service-account=tenant", f"({DEFAULT_ACCOUNT_AT})",
      "ServiceAccount flux-system/tenant")),
    # a flag that names a Secret
    ((FLUX_SYSTEM, "--log-level=info", "--sops-age-secret=sops-age"),
     (FLUX_SYSTEM, "--sops-age-secret", "kustomize-controller runs with --sops-age-secret=sops-age, which names "
      "Secret flux-system/sops-age")),
    # the procedure no longer makes the Secret the Provider reads
    ((PREPARE, "name: alerts-webhook", "name: alerts-hook"),
     (ALERTS, "name: alerts-webhook", "spec.secretRef names Secret flux-system/alerts-webhook",
      "Make it in the procedure that prepares the cluster")),
    # an account bootstrap's components do not have
    ((PLATFORM, "  serviceAccountName: kustomize-controller\n", "  serviceAccountName: kustomize-controler\n"),
     (PLATFORM, "kustomize-controler", "names ServiceAccount flux-system/kustomize-controler",
      "Did you mean ServiceAccount flux-system/kustomize-controller", "flux install --export")),
    # a namespace nobody makes
    ((RELEASE, "  releaseName: podinfo\n", "  targetNamespace: website\n"),
     (RELEASE, "targetNamespace: website", "spec.targetNamespace names Namespace website")),
    # a required substitution source nobody makes (an optional one is no failure)
    ((PLATFORM, "        name: cluster-vars\n", "        name: cluster-variables\n"),
     (PLATFORM, "name: cluster-variables",
      "spec.postBuild.substituteFrom[] names ConfigMap flux-system/cluster-variables")),
]


def test_flags_procedures_and_bootstrap_decide_what_the_cluster_has(base, blocks, tmp_path):
    root = mutated(base, tmp_path, [edit for edit, _ in FLAGS_AND_PROCEDURES])
    findings = check(root, blocks)
    missing = [expect(findings, root, rel, needle, *words)
               for _, expected in FLAGS_AND_PROCEDURES if expected for rel, needle, *words in [expected]]
    assert [m for m in missing if m] == [], "\n".join(failed(findings))
    assert not [f for f in failed(findings) if "apps-vars" in f], "an optional reference is not a failure"


def test_helm_makes_the_target_namespace_when_asked_to(base, blocks, tmp_path):
    root = mutated(base, tmp_path, [(RELEASE, "  releaseName: podinfo\n", "  releaseName: podinfo\n  "
                                     "targetNamespace: website\n  install: {createNamespace: true}\n")],
                   keep_lines=False)
    assert failed(check(root, blocks)) == []


def test_values_the_chart_cannot_render_fail_at_the_release(base, blocks, tmp_path):
    """Hosts written as names where the chart reads `host:` entries: helm
    cannot render the chart, so helm-controller could not install it."""
    root = mutated(base, tmp_path, [(RELEASE, "    tls:\n", "    ingress:\n      enabled: true\n"
                                     "      hosts: [podinfo.web.example]\n    tls:\n")], keep_lines=False)
    missing = expect(check(root, blocks), root, RELEASE, "  values:", "HelmRelease web/web: its chart podinfo",
                     "does not render with the release's values", "can't evaluate field")
    assert missing is None, missing
