"""Check: every Kubernetes object validates strictly against a pinned schema.

- Kubernetes kinds: the strict JSON schemas that the ``kubernetes-validate``
  package ships, for the Kubernetes minor ``versions.yaml`` names
  (``kubernetes.minimum``), or the newest the package has below it.
- Flux kinds (``*.toolkit.fluxcd.io``): the JSON schemas of the Flux CRDs in
  the folder ``Context.flux_schemas`` (layout ``{group}/{kind}_{version}.json``),
  whose ``metadata`` is also checked against the Kubernetes ObjectMeta schema.
  Without a folder, Flux objects are skipped with that reason.
- Any other kind fails unless ``tests/harness/schemas/no-schema.yaml`` names it
  with a reason; those objects are reported as skipped with the reason.

Unknown fields are errors everywhere. What is validated: every document with
``apiVersion`` and ``kind`` in every manifest block and in every YAML file of
the tree (after Flux substitution with defaults).
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate.utils as kv_utils
import referencing

from harness.checks import yaml_docs
from harness.flux_schemas import missing_reason as flux_schemas_missing
from harness.model import PROJECT_ROOT, Context, Finding, Location, Origin, Outcome
from harness.no_schema import NO_SCHEMA_FILE
from harness.no_schema import reason as no_schema_reason
from toolchain import pins

CHECK = "schema"
FLUX_GROUP_SUFFIX = ".toolkit.fluxcd.io"
MAX_ERRORS_PER_OBJECT = 8


@dataclass(frozen=True)
class Problem:
    """One reason an object does not validate: the path of the field (keys
    and indexes) and what is wrong."""

    path: tuple
    message: str


@dataclass(frozen=True)
class Skip:
    reason: str


# -- Kubernetes schemas ----------------------------------------------------------


def kubernetes_version(root: Path = PROJECT_ROOT) -> str:
    """The schema set to use: versions.yaml kubernetes.minimum, or the newest
    minor the package ships that is not newer."""
    return _kubernetes_version(str(pins.versions(root).get("kubernetes", {}).get("minimum", "")))


@functools.lru_cache(maxsize=None)
def _kubernetes_version(wanted: str) -> str:
    def minor(version: str) -> tuple[int, ...]:
        return tuple(int(part) for part in version.split(".")[:2])

    shipped = kv_utils.all_versions()
    if not wanted:
        return shipped[-1]
    usable = [v for v in shipped if minor(v) <= minor(wanted)]
    return usable[-1] if usable else shipped[0]


def _schema_dir(version: str):
    return importlib.resources.files("kubernetes_validate").joinpath(
        "kubernetes-json-schema", f"v{version}-local-strict"
    )


@functools.lru_cache(maxsize=None)
def _kubernetes_registry(version: str) -> referencing.Registry:
    definitions = json.loads(_schema_dir(version).joinpath("_definitions.json").read_text())
    return referencing.Resource.from_contents(definitions) @ referencing.Registry()


@functools.lru_cache(maxsize=None)
def _kubernetes_validator(version: str, kind: str, api_version: str):
    """A validator for one kind, or None when the package has no schema."""
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    schema_file = _schema_dir(version).joinpath(f"{kind.lower()}-{group_version}.json")
    if not schema_file.is_file():
        return None
    schema = json.loads(schema_file.read_text())
    registry = referencing.Resource.from_contents(schema) @ _kubernetes_registry(version)
    return jsonschema.Draft202012Validator(schema, registry=registry)


@functools.lru_cache(maxsize=None)
def _object_meta_validator(version: str):
    ref = {"$ref": "https://kubernetes.io/api/_definitions.json#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
    return jsonschema.Draft202012Validator(ref, registry=_kubernetes_registry(version))


@functools.lru_cache(maxsize=None)
def _kubernetes_versions_of(version: str, kind: str) -> tuple[str, ...]:
    """API versions the package has a schema for, for ``kind`` (for hints)."""
    prefix = kind.lower() + "-"
    found = []
    for entry in _schema_dir(version).iterdir():
        name = entry.name
        if name.startswith(prefix) and name.endswith(".json"):
            found.append(name[len(prefix):-5].replace("-", "/", 1))
    return tuple(sorted(found))


# -- Flux schemas ------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _flux_validator(folder: str, group: str, kind: str, version: str):
    path = Path(folder) / group / f"{kind.lower()}_{version}.json"
    if not path.is_file():
        return None
    schema = json.loads(path.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    return cls(schema)


@functools.lru_cache(maxsize=None)
def _flux_versions_of(folder: str, group: str, kind: str) -> tuple[str, ...]:
    directory = Path(folder) / group
    if not directory.is_dir():
        return ()
    prefix = kind.lower() + "_"
    return tuple(sorted(
        f"{group}/{p.stem[len(prefix):]}" for p in directory.glob(f"{prefix}*.json")
    ))


# -- validating one object -----------------------------------------------------------


def _problems(validator, data: Any, prefix: tuple = ()) -> list[Problem]:
    problems = []
    errors = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    for error in errors[:MAX_ERRORS_PER_OBJECT]:
        if error.context:  # anyOf / oneOf: the most relevant branch says more
            error = jsonschema.exceptions.best_match(error.context)
        path = prefix + tuple(error.absolute_path)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = set(error.schema.get("properties", {}))
            extra = [key for key in error.instance if key not in allowed]
            for key in extra:
                problems.append(Problem(path + (key,), f"unknown field `{key}`"))
            if extra:
                continue
        where = ".".join(str(p) for p in path) or "(top level)"
        problems.append(Problem(path, f"{where}: {error.message}"))
    return problems


def validate(data: dict, flux_schemas: Path | None) -> list[Problem] | Skip:
    """Validate one object. Returns its problems (empty when valid) or a Skip."""
    api_version, kind = str(data.get("apiVersion")), str(data.get("kind"))
    group, _, version = api_version.rpartition("/")
    if group.endswith(FLUX_GROUP_SUFFIX):
        if flux_schemas is None:
            return Skip(f"{kind} {api_version}: {flux_schemas_missing()}")
        validator = _flux_validator(str(flux_schemas), group, kind, version)
        if validator is None:
            served = _flux_versions_of(str(flux_schemas), group, kind)
            hint = f"the Flux CRDs serve {', '.join(served)}" if served else f"no Flux CRD defines kind {kind} in {group}"
            return [Problem(("apiVersion",), f"`{api_version}` `{kind}` is not served by the pinned Flux; {hint}")]
        problems = _problems(validator, data)
        meta = data.get("metadata")
        if isinstance(meta, dict):
            problems += _problems(_object_meta_validator(kubernetes_version()), meta, ("metadata",))
        return problems
    version_k8s = kubernetes_version()
    validator = _kubernetes_validator(version_k8s, kind, api_version)
    if validator is not None:
        return _problems(validator, data)
    reason = no_schema_reason(api_version, kind)
    if reason is not None:
        return Skip(f"{kind} {api_version}: no schema ({reason})")
    known = _kubernetes_versions_of(version_k8s, kind)
    if known:
        hint = f"Kubernetes {version_k8s} serves {kind} as {', '.join(known)}"
    else:
        hint = (
            f"no schema for it; if it is a third-party kind, name it with a reason in "
            f"{os.path.relpath(NO_SCHEMA_FILE, PROJECT_ROOT)}"
        )
    return [Problem(("apiVersion",), f"`{api_version}` `{kind}` has no schema: {hint}")]


# -- the check -------------------------------------------------------------------------


def findings_for(doc: yaml_docs.Doc, where, flux_schemas: Path | None, block=None, label: str = "") -> list[Finding]:
    """Findings for one parsed document; ``where(line0)`` turns a 0-based
    line of the text into a Location / Origin."""
    data = doc.data
    name = label or doc.ident()
    result = validate(data, flux_schemas)
    if isinstance(result, Skip):
        return [Finding(CHECK, Outcome.SKIPPED, where(doc.line), result.reason, block)]
    if not result:
        return [Finding(CHECK, Outcome.PASSED, where(doc.line), name, block)]
    return [
        Finding(
            CHECK, Outcome.FAILED,
            where(yaml_docs.line_of(data, problem.path, doc.line)),
            f"{name}: {problem.message}; fix the object or its apiVersion",
            block,
        )
        for problem in result
    ]


def _tree_sources(root: Path, block, doc: yaml_docs.Doc) -> list[str]:
    """The tree files a fragment (a document that is not a whole object) was
    included from, when every line of it came from the tree; else []."""
    lines = block.text.split("\n")
    origins = [
        block.origins[i] for i in range(doc.line, len(lines))
        if i < len(block.origins) and lines[i].strip() and not lines[i].lstrip().startswith("#")
    ]
    tree = yaml_docs.tree(root)
    paths = sorted({o.path for o in origins})
    if not origins or any(p == block.page or p not in tree for p in paths):
        return []
    return paths


def run(ctx: Context) -> list[Finding]:
    flux = Path(ctx.flux_schemas) if ctx.flux_schemas else None
    findings: list[Finding] = []
    for parsed in yaml_docs.manifest_blocks(ctx.blocks):
        block = parsed.block
        if parsed.error is not None:
            continue  # the yaml-parse check reports it
        if not parsed.docs:
            findings.append(Finding(CHECK, Outcome.FAILED, Location(block.fence), "the block has no YAML document", block))
        for doc in parsed.docs:
            if doc.is_object:
                findings += findings_for(doc, parsed.where, flux, block)
            elif (sources := _tree_sources(ctx.root, block, doc)):
                findings.append(Finding(
                    CHECK, Outcome.PASSED, parsed.where(doc.line),
                    f"a section of {', '.join(sources)}, validated as part of the whole file", block,
                ))
            else:
                findings.append(Finding(
                    CHECK, Outcome.FAILED, parsed.where(doc.line),
                    "not a Kubernetes object (no apiVersion and kind): show a whole object, or "
                    "mark the block `<!-- test: skip reason=\"...\" -->`",
                    block,
                ))
    for tree_file in yaml_docs.tree(ctx.root).values():
        if tree_file.error is not None:
            continue
        for doc in tree_file.docs:
            if doc.is_object:
                findings += findings_for(doc, tree_file.origin, flux)
    return findings
