"""Tests of ``harness.flux_schemas``: the Flux JSON schemas made from the Flux
CRDs, and which schema folder the harness uses.

- converting the CRDs of the pinned flux CLI (the toolchain's build) gives
  one schema per version each Flux kind serves, and the files read back as
  written;
- a CRD without a property makes a manifest that sets the field fail the
  schema check, at the field's file and line;
- the flux CLI path, with a fake ``flux`` that prints CRDs the way
  ``flux install --export`` does;
- the folder the harness picks: option, variable, generated, none.

Everything is written under pytest's temporary directory; the tree is never
touched.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import shutil
import stat
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

import yamlload

from harness import flux_schemas, tools
from harness.checks import schemas
from harness.model import PROJECT_ROOT, Context, Outcome

FLUX = tools.find("flux")
# One worker runs the module: its CRD fixture (flux install --export, a file
# per CRD) is made once, not once on each worker.
pytestmark = pytest.mark.xdist_group("flux-schemas")
needs_flux = pytest.mark.skipif(FLUX is None, reason=tools.missing_reason("flux"))
# What the pinned Flux serves (versions.yaml flux.api): one schema per kind
# and version, the image automation kinds included.
SERVED = sorted([
    "helm.toolkit.fluxcd.io/helmrelease_v2.json",
    "image.toolkit.fluxcd.io/imagepolicy_v1.json",
    "image.toolkit.fluxcd.io/imagerepository_v1.json",
    "image.toolkit.fluxcd.io/imageupdateautomation_v1.json",
    "kustomize.toolkit.fluxcd.io/kustomization_v1.json",
    "notification.toolkit.fluxcd.io/alert_v1beta3.json",
    "notification.toolkit.fluxcd.io/provider_v1beta3.json",
    "notification.toolkit.fluxcd.io/receiver_v1.json",
    "source.toolkit.fluxcd.io/bucket_v1.json",
    "source.toolkit.fluxcd.io/externalartifact_v1.json",
    "source.toolkit.fluxcd.io/gitrepository_v1.json",
    "source.toolkit.fluxcd.io/helmchart_v1.json",
    "source.toolkit.fluxcd.io/helmrepository_v1.json",
    "source.toolkit.fluxcd.io/ocirepository_v1.json",
])


@pytest.fixture(scope="module")
def flux_crds(tmp_path_factory) -> Path:
    """The CRDs the pinned flux CLI installs, one file per CRD."""
    out = tmp_path_factory.mktemp("flux-crds")
    text = subprocess.run([FLUX, "install", "--export", f"--components-extra={flux_schemas.FLUX_EXTRA_COMPONENTS}"],
                          capture_output=True, text=True, check=True, timeout=60).stdout
    for crd, _ in flux_schemas.crds_in(text, "flux install --export"):
        (out / f"{crd['metadata']['name']}.yaml").write_text(yamlload.dump(crd), encoding="utf-8")
    return out

# A self-made CRD in a Flux group, so the converter and the mutation are tested
# without the reference data too.
WIDGET_CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.toolkit.fluxcd.io
spec:
  group: example.toolkit.fluxcd.io
  names:
    kind: Widget
    plural: widgets
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            apiVersion: {type: string}
            kind: {type: string}
            metadata: {type: object}
            spec:
              type: object
              required: [interval]
              properties:
                interval: {type: string}
                timeout: {type: string}
                labels:
                  type: object
                  additionalProperties: {type: string}
                properties:
                  type: object
                  properties:
                    size: {type: integer}
                targets:
                  type: array
                  items:
                    type: object
                    properties:
                      name: {type: string}
                port:
                  anyOf:
                    - type: integer
                    - type: string
                  x-kubernetes-int-or-string: true
                values:
                  x-kubernetes-preserve-unknown-fields: true
                source:
                  type: object
                  properties:
                    kind: {type: string}
                    git: {type: object}
                    oci: {type: object}
                  anyOf:
                    - properties:
                        git: {}
                      required: [git]
                    - properties:
                        oci: {}
                      required: [oci]
    - name: v1beta1
      served: false
      storage: false
      schema:
        openAPIV3Schema:
          type: object
"""

WIDGET = """\
apiVersion: example.toolkit.fluxcd.io/v1
kind: Widget
metadata:
  name: w
  namespace: flux-system
spec:
  interval: 1m
  timeout: 5m
  source:
    kind: Git
    git: {}
"""

KUSTOMIZATION = """\
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: apps
  namespace: flux-system
spec:
  interval: 10m0s
  timeout: 5m0s
  path: ./apps
  prune: true
  sourceRef:
    kind: GitRepository
    name: flux-system
"""


def differences(got: dict[str, dict], want_dir: Path) -> list[str]:
    """Every difference between converted schemas and a schema folder, key by
    key: missing or extra files, and the JSON path of each differing value."""
    want = {p.relative_to(want_dir).as_posix(): p for p in want_dir.rglob("*.json")}
    found = [f"{want_dir / rel}: not made from the CRDs" for rel in sorted(set(want) - set(got))]
    found += [f"{rel}: made, but not in {want_dir}" for rel in sorted(set(got) - set(want))]

    def walk(a, b, where: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                if key not in a:
                    found.append(f"{where}/{key}: missing from the conversion")
                elif key not in b:
                    found.append(f"{where}/{key}: added by the conversion")
                else:
                    walk(a[key], b[key], f"{where}/{key}")
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for index, (x, y) in enumerate(zip(a, b)):
                walk(x, y, f"{where}/{index}")
        elif a != b or type(a) is not type(b):
            found.append(f"{where}: converted {json.dumps(a)[:80]}, reference {json.dumps(b)[:80]}")

    for rel in sorted(set(want) & set(got)):
        walk(got[rel], json.loads(want[rel].read_text(encoding="utf-8")), f"{want_dir / rel}#")
    return found


def schema_findings(tmp_path: Path, manifest: str, folder: Path) -> tuple[list, str]:
    """The schema check's findings on a one-file tree holding ``manifest``."""
    root = tmp_path / "tree"
    (root / "clusters" / "test").mkdir(parents=True)
    rel = "clusters/test/object.yaml"
    (root / rel).write_text(manifest, encoding="utf-8")
    return schemas.run(Context(root=root, blocks=[], flux_schemas=folder)), rel


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.split("\n"), start=1) if needle in line)


def failed(findings) -> list[str]:
    return [str(f) for f in findings if f.outcome is Outcome.FAILED]


def fake_flux(tmp_path: Path, version: str, crds: list[Path]) -> Path:
    """A ``flux`` that answers ``version --client -o json`` and prints a
    Namespace and the given CRD files for ``install --export`` with the image
    automation extras, like the real CLI; anything else is an error."""
    listing = " ".join(f"'{p}'" for p in crds)
    script = tmp_path / "bin" / "flux"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        case "$*" in
          "version --client -o json")
            printf '{{"flux": "v{version}"}}\\n' ;;
          "install --export --components-extra={flux_schemas.FLUX_EXTRA_COMPONENTS}")
            printf -- '---\\n# Flux version: v{version}\\napiVersion: v1\\nkind: Namespace\\nmetadata:\\n  name: flux-system\\n'
            for crd in {listing}; do printf -- '---\\n'; cat "$crd"; done ;;
          *)
            echo "flux (test double): unexpected arguments: $*" >&2; exit 2 ;;
        esac
        """), encoding="utf-8")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """What ``python -m harness.flux_schemas ARGS`` runs (its ``main``), in
    this process: a new interpreter would spend most of the test importing."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = flux_schemas.main(list(args))
    return subprocess.CompletedProcess(["python", "-m", "harness.flux_schemas", *args], code, out.getvalue(),
                                       err.getvalue())


# -- the conversion ------------------------------------------------------------------------


@needs_flux
def test_the_pinned_flux_crds_convert_to_one_schema_per_served_version(flux_crds, tmp_path):
    got = flux_schemas.from_crds(flux_crds)
    assert sorted(got) == SERVED
    flux_schemas.write(got, tmp_path / "schemas")
    assert differences(got, tmp_path / "schemas") == []  # and the files read back as written
    for rel, schema in got.items():
        assert flux_schemas.render(schema) == (tmp_path / "schemas" / rel).read_text(encoding="utf-8"), rel
        assert schema["properties"]["spec"].get("additionalProperties") is False, rel


def test_every_object_that_lists_its_properties_is_closed(tmp_path):
    (tmp_path / "widget.yaml").write_text(WIDGET_CRD)
    got = flux_schemas.from_crds(tmp_path / "widget.yaml")
    assert sorted(got) == ["example.toolkit.fluxcd.io/widget_v1.json"]  # v1beta1 is not served
    top = got["example.toolkit.fluxcd.io/widget_v1.json"]
    spec = top["properties"]["spec"]
    assert top["additionalProperties"] is False
    assert spec["additionalProperties"] is False
    assert spec["properties"]["targets"]["items"]["additionalProperties"] is False
    # a field named `properties` is a field, not a keyword
    assert spec["properties"]["properties"]["additionalProperties"] is False
    assert "additionalProperties" not in spec["properties"]
    # maps, objects without listed properties and open objects stay as they are
    assert spec["properties"]["labels"]["additionalProperties"] == {"type": "string"}
    assert "additionalProperties" not in top["properties"]["metadata"]
    assert "additionalProperties" not in spec["properties"]["values"]
    assert spec["properties"]["port"]["anyOf"] == [{"type": "integer"}, {"type": "string"}]
    # the branches of anyOf only add conditions: closing one would reject `kind`
    source = spec["properties"]["source"]
    assert source["additionalProperties"] is False
    assert all("additionalProperties" not in branch for branch in source["anyOf"])


def test_input_without_a_crd_is_an_error(tmp_path):
    (tmp_path / "ns.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n")
    with pytest.raises(flux_schemas.SchemaError, match="no CustomResourceDefinition"):
        flux_schemas.from_crds(tmp_path)


def test_a_crd_given_twice_is_an_error_naming_both_places(tmp_path):
    (tmp_path / "a.yaml").write_text(WIDGET_CRD)
    (tmp_path / "b.yaml").write_text("---\n" + WIDGET_CRD)
    with pytest.raises(flux_schemas.SchemaError) as error:
        flux_schemas.from_crds(tmp_path)
    assert f"{tmp_path / 'b.yaml'}:2" in str(error.value) and f"{tmp_path / 'a.yaml'}:1" in str(error.value)


# -- mutation: a CRD without a property -------------------------------------------------------


def test_a_field_the_crd_does_not_define_fails_validation(tmp_path):
    crd = yamlload.load(WIDGET_CRD)
    for label, source in (("with", crd), ("without", copy.deepcopy(crd))):
        if label == "without":
            del source["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["timeout"]
        (tmp_path / label).mkdir()
        (tmp_path / label / "crd.yaml").write_text(yaml.safe_dump(source))
        flux_schemas.write(flux_schemas.from_crds(tmp_path / label / "crd.yaml"), tmp_path / label / "schemas")
    passing, _ = schema_findings(tmp_path / "a", WIDGET, tmp_path / "with" / "schemas")
    assert failed(passing) == [] and any(f.outcome is Outcome.PASSED for f in passing)
    findings, rel = schema_findings(tmp_path / "b", WIDGET, tmp_path / "without" / "schemas")
    where = f"{rel}:{line_of(WIDGET, 'timeout:')}:"
    assert any(f.startswith(where) and "unknown field `timeout`" in f for f in failed(findings)), failed(findings)


@needs_flux
def test_a_field_the_flux_crd_does_not_define_fails_validation(tmp_path, flux_crds):
    path = flux_crds / "kustomizations.kustomize.toolkit.fluxcd.io.yaml"
    crd = yamlload.load(path.read_text(encoding="utf-8"))
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert "timeout" in spec["properties"], f"{path}: the mutation target spec.timeout is gone"
    del spec["properties"]["timeout"]
    (tmp_path / "crds").mkdir()
    (tmp_path / "crds" / path.name).write_text(yaml.safe_dump(crd))
    flux_schemas.write(flux_schemas.from_crds(tmp_path / "crds"), tmp_path / "schemas")
    flux_schemas.write(flux_schemas.from_crds(flux_crds), tmp_path / "pinned")
    passing, _ = schema_findings(tmp_path / "a", KUSTOMIZATION, tmp_path / "pinned")
    assert failed(passing) == []
    findings, rel = schema_findings(tmp_path / "b", KUSTOMIZATION, tmp_path / "schemas")
    where = f"{rel}:{line_of(KUSTOMIZATION, 'timeout:')}:"
    assert any(f.startswith(where) and "unknown field `timeout`" in f for f in failed(findings)), failed(findings)


# -- from the flux CLI ----------------------------------------------------------------------


@needs_flux
def test_the_flux_cli_path_gives_the_schemas_of_its_crds(tmp_path, flux_crds):
    out = tmp_path / "out" / "schemas"
    done = run_cli("--flux", FLUX, "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert f"wrote {len(SERVED)} schemas" in done.stdout
    got = {p.relative_to(out).as_posix(): json.loads(p.read_text()) for p in out.rglob("*.json")}
    assert sorted(got) == SERVED
    reference = tmp_path / "from-crds"
    flux_schemas.write(flux_schemas.from_crds(flux_crds), reference)
    assert differences(got, reference) == []


def test_a_flux_cli_of_another_version_is_refused(tmp_path):
    (tmp_path / "widget.yaml").write_text(WIDGET_CRD)
    flux = fake_flux(tmp_path, "0.0.1", [tmp_path / "widget.yaml"])
    out = tmp_path / "out"
    done = run_cli("--flux", str(flux), "--out", str(out))
    assert done.returncode == 1
    assert f"flux 0.0.1, versions.yaml pins flux.version {flux_schemas.pinned_version()}" in done.stderr
    assert not out.exists()


def test_without_a_flux_cli_the_error_says_what_to_do(tmp_path, monkeypatch, capsys):
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(PROJECT_ROOT / "versions.yaml", root / "versions.yaml")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("GITOPS_WHITEPAPER_CACHE", str(tmp_path / "cache"))
    assert flux_schemas.main([], root=root) == 1
    message = capsys.readouterr().err
    assert "flux not found" in message and "--crds DIR" in message
    assert not (root / ".tools").exists()


# -- writing -----------------------------------------------------------------------------------


def test_writing_replaces_an_old_schema_folder_but_nothing_else(tmp_path):
    (tmp_path / "widget.yaml").write_text(WIDGET_CRD)
    got = flux_schemas.from_crds(tmp_path / "widget.yaml")
    out = tmp_path / "schemas"
    (out / "example.toolkit.fluxcd.io").mkdir(parents=True)
    (out / "example.toolkit.fluxcd.io" / "gadget_v1.json").write_text("{}")
    flux_schemas.write(got, out)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.json")) == sorted(got)
    other = tmp_path / "notes"
    other.mkdir()
    (other / "todo.txt").write_text("keep me")
    with pytest.raises(flux_schemas.SchemaError, match="not a Flux schema folder"):
        flux_schemas.write(got, other)
    assert (other / "todo.txt").read_text() == "keep me"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left


# -- which folder the harness uses ----------------------------------------------------------------


def test_the_schema_folder_the_harness_uses(tmp_path, monkeypatch):
    monkeypatch.setenv("GITOPS_WHITEPAPER_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "project"
    root.mkdir()
    (root / "versions.yaml").write_text('flux:\n  version: "2.9.5"\n')
    (tmp_path / "shared" / "flux" / "schemas").mkdir(parents=True)  # never used: a user's clone has none
    assert flux_schemas.schema_folder(None, None, root) is None
    reason = flux_schemas.missing_reason(root)
    assert "not found in" in reason and str(tmp_path / "cache" / "flux-schemas" / "2.9.5") in reason
    assert "`nox -s flux-schemas`" in reason
    generated = tmp_path / "cache" / "flux-schemas" / "2.9.5"
    generated.mkdir(parents=True)
    assert flux_schemas.schema_folder(None, None, root) == generated
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    mine.mkdir()
    theirs.mkdir()
    assert flux_schemas.schema_folder(None, str(theirs), root) == theirs
    assert flux_schemas.schema_folder(str(mine), str(theirs), root) == mine
    (root / "relative").mkdir()
    assert flux_schemas.schema_folder("relative", None, root) == root / "relative"
    with pytest.raises(flux_schemas.SchemaError, match="--flux-schemas nowhere: no such folder"):
        flux_schemas.schema_folder("nowhere", None, root)
    with pytest.raises(flux_schemas.SchemaError, match="FLUX_SCHEMAS nowhere: no such folder"):
        flux_schemas.schema_folder(None, "nowhere", root)


def test_without_schemas_a_flux_object_is_skipped_with_the_advice():
    kustomization = {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": "apps", "namespace": "flux-system"},
        "spec": {"interval": "10m", "path": "./apps", "prune": True,
                 "sourceRef": {"kind": "GitRepository", "name": "flux-system"}},
    }
    result = schemas.validate(kustomization, None)
    assert isinstance(result, schemas.Skip)
    assert "nox -s flux-schemas" in result.reason
