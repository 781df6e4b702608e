"""The data the ``references`` check resolves with stays true to its sources:

- every field of the pinned Flux's CRDs that names an object (by its name:
  ``...Ref``, ``serviceAccountName``, ``dependsOn``...) is in the reference
  table, or listed there as not checked with the reason;
- the objects Kubernetes makes by itself are the default RBAC policy of the
  pinned Kubernetes, where the toolchain has fetched its sources;
- the procedures of ``snippets/`` are read for what they make.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import yamlload

from harness import flux_schemas
from harness.checks import cluster_inventory, helm_charts, procedures, reference_table
from harness.model import PROJECT_ROOT

REFERENCE_NAMES = re.compile(
    r"(Ref|Refs)$|^(serviceAccountName|dependsOn|substituteFrom|valuesFrom|eventSources|resources|include|"
    r"targetNamespace|storageNamespace|healthChecks|accessFrom|createNamespace|secretName)$")
SCHEMAS = flux_schemas.generated_folder(PROJECT_ROOT)


def reference_like(schema: dict, path: str = "spec") -> list[str]:
    """Paths (``spec.a.b``, ``[]`` for list items) of the fields whose names
    say they name an object."""
    found = []
    for name, sub in (schema.get("properties") or {}).items():
        here = f"{path}.{name}"
        if REFERENCE_NAMES.search(name):
            found.append(here + ("[]" if sub.get("type") == "array" else ""))
        if sub.get("type") == "array" and isinstance(sub.get("items"), dict):
            found += reference_like(sub["items"], here + "[]")
        elif isinstance(sub, dict):
            found += reference_like(sub, here)
    return found


@pytest.mark.skipif(not SCHEMAS.is_dir(), reason=flux_schemas.missing_reason(PROJECT_ROOT))
def test_every_reference_field_of_the_flux_crds_is_in_the_table():
    table = reference_table.load()
    by_lower = {(group, kind.lower()): entry for (group, kind), entry in table.kinds.items()}
    skipped = {(e["kind"].lower(), e["field"]) for e in table.not_checked}
    missing = []
    schemas = sorted(SCHEMAS.glob("*/*.json"))
    assert schemas, f"no schemas in {SCHEMAS}"
    for path in schemas:
        group, kind = path.parent.name, path.stem.rsplit("_", 1)[0]
        schema = json.loads(path.read_text(encoding="utf-8"))
        entry = by_lower.get((group, kind))
        shown = [f.shown for f in entry.fields] if entry else []
        for field in reference_like((schema.get("properties") or {}).get("spec") or {}):
            bare = field.removesuffix("[]")
            if any(s == field or s.startswith((bare + ".", bare + "[]")) for s in shown):
                continue
            if (kind, bare) in skipped:
                continue
            missing.append(f"{group} {kind}: {field}")
    assert missing == [], (
        "fields of the pinned Flux's CRDs that name an object but are not in "
        f"{reference_table.TABLE_FILE.relative_to(PROJECT_ROOT)}: add an entry for each (or list it under "
        f"not_checked with the reason): {missing}")


def test_every_table_entry_is_well_formed():
    table = reference_table.load()
    for (group, kind), entry in table.kinds.items():
        for field in entry.fields:
            assert field.kind or field.kind_from, f"{group}/{kind} {field.shown}: names no kind"
            if field.lockdown or field.default_flag:
                assert entry.controller, f"{group}/{kind} {field.shown}: which controller enforces it?"


def test_kubernetes_builtins_are_the_default_rbac_policy():
    builtins = cluster_inventory._builtins()
    source = builtins["source"]
    pins = yamlload.load((PROJECT_ROOT / "versions.yaml").read_text(encoding="utf-8"))
    version = pins["tools"]["kubernetes"]["version"]
    module = helm_charts.module_dir(source["module"], version)
    if module is None:
        pytest.skip(f"{source['module']}@{version} is not in the Go module cache (`nox -s tools -- kubernetes` "
                    "fetches it)")
    expected = set()
    for name in source["files"]:
        text = (module / source["testdata"] / name).read_text(encoding="utf-8")
        for item in yamlload.load(text)["items"]:
            expected.add((item["kind"], item["metadata"].get("namespace"), item["metadata"]["name"]))
    listed = {(r["kind"], r.get("namespace"), r["name"]) for r in builtins["roles"]}
    assert listed == expected, (f"kubernetes-builtins.yaml roles differ from {source['module']}@{version}: "
                                f"missing {sorted(expected - listed)}, extra {sorted(listed - expected)}")


def test_the_procedures_are_read_from_the_scripts():
    made = {(m.kind, m.namespace, m.name): str(m.where) for m in procedures.read(PROJECT_ROOT).made}
    script = "snippets/cluster-vars.sh"
    for key in (("Namespace", None, "flux-system"), ("ConfigMap", "flux-system", "cluster-vars"),
                ("Secret", "flux-system", "platform-release-key"), ("Secret", "flux-system", "alerts-slack")):
        assert key in made and made[key].startswith(script + ":"), f"{script} makes {key}: {made}"
    boots = procedures.read(PROJECT_ROOT).bootstraps
    assert [str(b.where).split(":")[0] for b in boots] == ["snippets/flux-bootstrap.sh"]
    assert boots[0].command == ("bootstrap", "git")


def test_a_procedure_that_only_prints_a_manifest_makes_nothing(tmp_path: Path):
    (tmp_path / "snippets").mkdir()
    (tmp_path / "snippets" / "show.sh").write_text(
        "#!/usr/bin/env bash\ncat <<YAML\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shown\nYAML\n"
        "kubectl --context \"$C\" create secret generic made-here -n apps --from-literal=a=b\n"
        "\"${KUBECTL:-kubectl}\" create namespace \"$NAME\"\n", encoding="utf-8")
    made = {(m.kind, m.namespace, m.name) for m in procedures.read(tmp_path).made}
    assert made == {("Secret", "apps", "made-here")}


def test_a_pages_cluster_block_makes_objects_on_its_cluster_only():
    """The reconciliation page's development block makes the Receiver's
    token: it counts on development, at the page line of its command."""
    from harness import extract

    made = procedures.from_cluster_blocks(extract.collect(PROJECT_ROOT, page="docs/design/reconciliation.md"))
    tokens = [m for m in made.get("development", []) if (m.kind, m.namespace, m.name) ==
              ("Secret", "flux-system", "receiver-token")]
    assert tokens, made
    page = (PROJECT_ROOT / "docs/design/reconciliation.md").read_text(encoding="utf-8").split("\n")
    assert "create secret generic receiver-token" in page[tokens[0].where.line - 1], tokens[0].where
    assert not any(m.name == "receiver-token" for m in made.get("staging", []))
