"""The Flux JSON schemas the manifest checks validate against: where they are,
and how to make them from the Flux CRDs.

The schema folder is laid out ``{group}/{kind lower-case}_{version}.json``,
one file per version a CRD serves. Each file is the version's
``openAPIV3Schema`` with ``additionalProperties: false`` added to every object
schema that lists its ``properties`` and says nothing about other fields, so
an unknown field is an error (as ``kubeconform -strict``).

Which folder the harness uses (``schema_folder``): ``--flux-schemas=DIR``,
else ``$FLUX_SCHEMAS``, else ``<tool cache>/flux-schemas/<flux.version>``
(``~/.cache/gitops-whitepaper/...``, shared by every clone), made from the
pinned Flux's own CRDs, else none (Flux objects are then skipped with
``missing_reason()``).

``nox -s docs-test`` makes that folder when it is missing, after the
toolchain has built the pinned flux CLI; ``nox -s flux-schemas``
(``python -m harness.flux_schemas`` with ``tests`` on the Python path) makes
it on request, from the CRDs the flux CLI bundles (``flux install
--export``), or from a folder or file of CRDs (``--crds PATH``).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterable

import yaml

import yamlload

from harness import tools
from harness.model import PROJECT_ROOT
from toolchain import pins

GENERATED_DIR = "<tool cache>/flux-schemas"
CRD_API_VERSION = "apiextensions.k8s.io/v1"
# `flux install` installs these by default; the image automation controllers,
# whose CRDs the tree also uses, only on request.
FLUX_EXTRA_COMPONENTS = "image-reflector-controller,image-automation-controller"
SCHEMA_FILE = re.compile(r"^[a-z0-9.-]+/[a-z0-9]+_[a-z0-9]+\.json$")



class SchemaError(Exception):
    """A CRD that cannot be converted, a flux CLI that cannot be used, or a
    schema folder that does not exist; the message says where and what to do."""


# -- which folder ----------------------------------------------------------------------


def pinned_version(root: Path = PROJECT_ROOT) -> str:
    """versions.yaml ``flux.version`` (without a leading ``v``)."""
    version = str((pins.versions(root).get("flux") or {}).get("version") or "").lstrip("v")
    if not version:
        raise SchemaError(f"{Path(root) / 'versions.yaml'}: no flux.version; pin the Flux version there")
    return version


def generated_folder(root: Path = PROJECT_ROOT) -> Path:
    """Where the schemas of the pinned Flux are made, in the tool cache."""
    from toolchain import cache

    return cache.root() / "flux-schemas" / pinned_version(root)


def missing_reason(root: Path = PROJECT_ROOT) -> str:
    """Why Flux objects are skipped when ``schema_folder`` finds none, and what
    to do (the report lists skips whose reason says "not found in")."""
    try:
        generated = str(generated_folder(root))
    except (SchemaError, OSError):
        generated = f"{GENERATED_DIR}/<flux.version>"
    return (
        f"Flux schemas not found in --flux-schemas, $FLUX_SCHEMAS or {generated}; "
        "run `nox -s tools -- flux` and then `nox -s flux-schemas` to make them from the pinned Flux CRDs"
    )


def schema_folder(option: str | None, env: str | None, root: Path = PROJECT_ROOT) -> Path | None:
    """The Flux schema folder the harness uses (see the module docstring). A
    folder named by the option or the variable must exist."""
    for source, chosen in (("--flux-schemas", option), ("FLUX_SCHEMAS", env)):
        if chosen:
            path = Path(chosen)
            path = path if path.is_absolute() else (Path(root) / path).resolve()
            if not path.is_dir():
                raise SchemaError(
                    f"{source} {chosen}: no such folder; give a folder of Flux JSON schemas "
                    f"or run `nox -s flux-schemas` and leave {source} unset"
                )
            return path
    candidate = generated_folder(root)
    return candidate if candidate.is_dir() else None


# -- CRD -> JSON schema ----------------------------------------------------------------

# Keywords whose value is the schema of a value (``items``, ``additionalProperties``)
# or a map of field name -> schema. The branches of ``allOf``, ``anyOf``,
# ``oneOf`` and ``not`` only add conditions on fields the schema around them
# defines (a structural schema's rule), so they are left open: closing one
# would reject the fields it does not repeat.
_ONE_SCHEMA = ("items", "additionalProperties")
_SCHEMA_MAP = ("properties", "patternProperties")


def strict(schema: Any) -> Any:
    """A copy of an OpenAPI v3 schema in which every object schema that lists
    ``properties`` and sets no ``additionalProperties`` forbids other fields."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    for key in _ONE_SCHEMA:
        if isinstance(out.get(key), dict):
            out[key] = strict(out[key])
    for key in _SCHEMA_MAP:
        if isinstance(out.get(key), dict):
            out[key] = {name: strict(sub) for name, sub in out[key].items()}
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def crd_schemas(crd: dict, where: str) -> dict[str, dict]:
    """``{"group/kind_version.json": schema}`` for every served version of one
    CRD; ``where`` (file:line) names it in errors."""
    spec = crd.get("spec") or {}
    group = spec.get("group")
    kind = (spec.get("names") or {}).get("kind")
    if not group or not kind:
        raise SchemaError(f"{where}: CustomResourceDefinition without spec.group or spec.names.kind")
    schemas = {}
    for version in spec.get("versions") or []:
        if not version.get("served"):
            continue
        name = version.get("name")
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        if not isinstance(schema, dict):
            raise SchemaError(
                f"{where}: {kind} {group}/{name} is served but has no schema.openAPIV3Schema; "
                "use the CRDs as the Flux release publishes them"
            )
        schemas[f"{group}/{kind.lower()}_{name}.json"] = strict(schema)
    return schemas


def crds_in(text: str, source: str) -> Iterable[tuple[dict, str]]:
    """The CustomResourceDefinitions in a YAML stream, each with source:line."""
    loader = yamlload.Loader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            doc = loader.construct_document(node)
            if (
                isinstance(doc, dict)
                and doc.get("kind") == "CustomResourceDefinition"
                and doc.get("apiVersion") == CRD_API_VERSION
            ):
                yield doc, f"{source}:{node.start_mark.line + 1}"
    except yaml.YAMLError as error:
        raise SchemaError(f"{source}: not valid YAML: {error}") from None
    finally:
        loader.dispose()


def convert(streams: Iterable[tuple[str, str]]) -> dict[str, dict]:
    """Every schema from ``(text, source)`` YAML streams of CRDs."""
    schemas: dict[str, dict] = {}
    origin: dict[str, str] = {}
    for text, source in streams:
        for crd, where in crds_in(text, source):
            for path, schema in crd_schemas(crd, where).items():
                if path in schemas:
                    raise SchemaError(f"{where}: {path} is also defined at {origin[path]}; give each CRD once")
                schemas[path], origin[path] = schema, where
    if not schemas:
        raise SchemaError("no CustomResourceDefinition (apiextensions.k8s.io/v1) found in the input")
    return schemas


def crd_files(path: Path) -> list[Path]:
    """A CRD file, or the ``*.yaml`` / ``*.yml`` files of a folder (sorted)."""
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
        if files:
            return files
        raise SchemaError(f"{path}: no .yaml or .yml files; give a folder or file of Flux CRDs")
    raise SchemaError(f"{path}: no such file or folder")


def from_crds(path: Path) -> dict[str, dict]:
    return convert((p.read_text(encoding="utf-8"), str(p)) for p in crd_files(path))


# -- CRDs from the flux CLI ------------------------------------------------------------


def _run(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    except OSError as error:
        raise SchemaError(f"`{' '.join(command)}` could not run: {error}") from None
    except subprocess.TimeoutExpired:
        raise SchemaError(f"`{' '.join(command)}` ran past 120s") from None
    if done.returncode != 0:
        raise SchemaError(
            f"`{' '.join(command)}` exited {done.returncode}: {done.stderr.strip() or done.stdout.strip()}"
        )
    return done.stdout


def flux_version(flux: str) -> str:
    """The flux CLI's own version (``flux version --client -o json``), without ``v``."""
    out = _run([flux, "version", "--client", "-o", "json"])
    try:
        version = str(json.loads(out)["flux"])
    except (ValueError, KeyError, TypeError):
        raise SchemaError(f"`{flux} version --client -o json` printed no flux version: {out.strip()[:200]}") from None
    return version.lstrip("v")


def from_flux(flux: str, expected: str) -> dict[str, dict]:
    """The schemas of the CRDs the flux CLI bundles, which must be the CLI of
    the ``expected`` Flux version."""
    version = flux_version(flux)
    if version != expected:
        raise SchemaError(
            f"{flux} is flux {version}, versions.yaml pins flux.version {expected}; install the pinned "
            "flux release binary into .tools/bin (or on PATH), or pass --flux PATH"
        )
    command = [flux, "install", "--export", f"--components-extra={FLUX_EXTRA_COMPONENTS}"]
    return convert([(_run(command), f"`{' '.join(command)}`")])


# -- writing the folder ----------------------------------------------------------------


def render(schema: dict) -> str:
    return json.dumps(schema, indent=1, sort_keys=True) + "\n"


def _is_schema_folder(path: Path) -> bool:
    """True when every file under ``path`` is a ``group/kind_version.json``."""
    return all(
        SCHEMA_FILE.match(p.relative_to(path).as_posix())
        for p in path.rglob("*") if not p.is_dir()
    )


def write(schemas: dict[str, dict], out: Path) -> None:
    """Write ``schemas`` to ``out``, replacing a schema folder that is there
    (never any other folder) only once every file is written."""
    out = Path(out)
    if out.exists() and not (out.is_dir() and _is_schema_folder(out)):
        raise SchemaError(f"{out}: exists and is not a Flux schema folder; remove it or choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for rel, schema in sorted(schemas.items()):
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(render(schema), encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


# -- command line ------------------------------------------------------------------------


def main(argv: list[str] | None = None, root: Path = PROJECT_ROOT) -> int:
    parser = argparse.ArgumentParser(
        prog="nox -s flux-schemas --",
        description="Write the JSON schemas of the pinned Flux CRDs to "
        f"{GENERATED_DIR}/<flux.version>/, where the docs-test harness finds them.",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--crds", metavar="PATH", help="a folder or file of Flux CRDs, instead of the flux CLI")
    source.add_argument("--flux", metavar="PATH", help="the flux CLI to ask (default: the toolchain's, then PATH)")
    parser.add_argument("--out", metavar="DIR", help=f"write here instead of {GENERATED_DIR}/<flux.version>")
    parser.add_argument("--if-missing", action="store_true",
                        help="do nothing when the folder for the pinned version exists (docs-test uses this)")
    args = parser.parse_args(argv)
    if args.if_missing and not args.out and generated_folder(root).is_dir():
        print(f"flux-schemas: {generated_folder(root)} (made earlier)")
        return 0
    try:
        expected = pinned_version(root)
        if args.crds:
            schemas = from_crds(Path(args.crds))
            origin = args.crds
        else:
            flux = args.flux or tools.find("flux", root)
            if flux is None:
                raise SchemaError(
                    f"{tools.missing_reason('flux', root)}; or convert a folder of the pinned "
                    "Flux CRDs: `nox -s flux-schemas -- --crds DIR`"
                )
            schemas = from_flux(flux, expected)
            origin = f"{flux} install --export"
        out = Path(args.out) if args.out else generated_folder(root)
        write(schemas, out)
    except (SchemaError, OSError) as error:
        print(f"flux-schemas: {error}", file=sys.stderr)
        return 1
    shown = out.resolve()
    shown = shown.relative_to(root) if shown.is_relative_to(root) else shown
    print(f"flux-schemas: wrote {len(schemas)} schemas from {origin} to {shown}")
    for rel in sorted(schemas):
        print(f"  {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
