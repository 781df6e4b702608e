"""Which fields of an object name another object: the table in
``tests/harness/schemas/references.yaml``, read into ``Field`` entries, and
``references_of`` / ``made_by``, which apply it to one object.

The table is data, one entry per field, so a new reference field is a new
entry, not new code: this module only knows how to walk a path (``[]``
steps into every item of a list) and how to read a name, a kind, a group and
a namespace from what it finds there. What the cluster will have, and
whether a reference holds, is ``cluster_inventory`` and ``references``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator


import yamlload

TABLE_FILE = Path(__file__).resolve().parents[1] / "schemas" / "references.yaml"
EACH = "[]"


@dataclass(frozen=True)
class Field:
    """One entry of the table (see the file's header for each key)."""

    field: tuple[str, ...]
    kind: str | None = None
    kind_from: str | None = None
    kinds: tuple[str, ...] = ()
    kind_default: str | None = None
    name: str = "name"
    group: Any = None  # str, or a mapping kind -> group, or None (any group)
    group_from: str | None = None
    group_default: str | None = None
    groups_checked: tuple[str, ...] = ()
    namespace_from: str | None = None
    optional_from: str | None = None
    optional: bool = False
    why: str = ""
    wildcard: str | None = None
    lockdown: bool = False
    default_flag: str | None = None
    when: tuple[str, ...] = ()
    makes: bool = False
    controller: str | None = None  # the kind's controller (lockdown, default flags)

    @property
    def shown(self) -> str:
        return ".".join(self.field).replace("." + EACH, EACH)


@dataclass(frozen=True)
class Reference:
    """One reference an object makes, as written (before the cluster's
    flags and scopes are applied)."""

    path: tuple  # the concrete path of the field (list indexes filled in), for its line
    kind: str
    group: str | None  # None: any group
    name: str | None  # None: the name is a controller flag's value (``Field.default_flag``)
    namespace: str  # the namespace it names (the referring object's when it names none)
    names_namespace: bool  # the reference itself names a namespace
    optional: bool
    entry: Field


@dataclass(frozen=True)
class KindEntry:
    group: str
    kind: str
    controller: str | None
    fields: tuple[Field, ...]


@dataclass(frozen=True)
class FlagEntry:
    controller: str
    flag: str
    kind: str
    group: str


@dataclass(frozen=True)
class Table:
    kinds: dict[tuple[str, str], KindEntry]
    every_object: tuple[Field, ...]
    cluster_scoped: frozenset[str]
    controller_flags: tuple[FlagEntry, ...]
    not_checked: tuple[dict, ...]


def _path(text: str) -> tuple[str, ...]:
    steps: list[str] = []
    for part in str(text).split("."):
        lists = 0
        while part.endswith(EACH):
            part, lists = part[: -len(EACH)], lists + 1
        steps += ([part] if part else []) + [EACH] * lists
    return tuple(steps)


def _field(raw: dict, prefix: tuple[str, ...] = (), controller: str | None = None) -> Field:
    known = set(Field.__dataclass_fields__) - {"controller"}
    unknown = set(raw) - known
    if unknown:
        raise ValueError(f"{TABLE_FILE}: entry {raw.get('field')!r} has unknown keys {sorted(unknown)}")
    values = dict(raw)
    values["field"] = prefix + _path(raw["field"])
    if "when" in values:
        values["when"] = _path(values["when"])
    for key in ("kinds", "groups_checked"):
        if key in values:
            values[key] = tuple(values[key])
    return Field(**values, controller=controller)


@functools.lru_cache(maxsize=4)
def load(path: str = str(TABLE_FILE)) -> Table:
    """The table (read once per process)."""
    with open(path, encoding="utf-8") as handle:
        data = yamlload.load(handle) or {}
    pod_spec = data.get("pod_spec") or []
    kinds: dict[tuple[str, str], KindEntry] = {}
    for entry in data.get("kinds") or []:
        group, kind, controller = str(entry.get("group") or ""), str(entry["kind"]), entry.get("controller")
        fields = [_field(raw, controller=controller) for raw in entry.get("references") or []]
        if entry.get("pod_spec"):
            prefix = _path(entry["pod_spec"])
            fields += [_field(raw, prefix, controller) for raw in pod_spec]
        kinds[(group, kind)] = KindEntry(group, kind, controller, tuple(fields))
    flags = tuple(FlagEntry(str(f["controller"]), str(f["flag"]), str(f["kind"]), str(f.get("group") or ""))
                  for f in data.get("controller_flags") or [])
    return Table(kinds, tuple(_field(raw) for raw in data.get("every_object") or []),
                 frozenset(data.get("cluster_scoped") or []), flags, tuple(data.get("not_checked") or []))


def group_of(api_version: Any) -> str:
    """The API group of an apiVersion (``apps/v1`` -> ``apps``, ``v1`` -> ``""``)."""
    text = str(api_version or "")
    return text.rpartition("/")[0]


def entry_for(data: dict) -> KindEntry | None:
    return load().kinds.get((group_of(data.get("apiVersion")), str(data.get("kind"))))


def _get(data: Any, path: tuple[str, ...]) -> Any:
    node = data
    for step in path:
        if not isinstance(node, dict):
            return None
        node = node.get(step)
    return node


def _walk(node: Any, steps: tuple[str, ...], at: tuple = ()) -> Iterator[tuple[Any, tuple]]:
    """(value, concrete path) of every value at ``steps`` below ``node``."""
    if not steps:
        yield node, at
        return
    step, rest = steps[0], steps[1:]
    if step == EACH:
        if isinstance(node, list):
            for index, item in enumerate(node):
                yield from _walk(item, rest, at + (index,))
    elif isinstance(node, dict) and step in node:
        yield from _walk(node[step], rest, at + (step,))


def _target_group(entry: Field, value: Any, kind: str) -> tuple[bool, str | None]:
    """(whether the reference is checked at all, the target's group or None for any)."""
    if entry.group_from:
        raw = value.get(entry.group_from) if isinstance(value, dict) else None
        if raw in (None, ""):
            group = entry.group_default
        elif entry.group_from == "apiVersion":
            group = group_of(raw)
        else:
            group = str(raw)
        if entry.groups_checked and group not in entry.groups_checked:
            return False, None
        return True, group
    if isinstance(entry.group, dict):
        return True, entry.group.get(kind)
    return True, entry.group


def _references(data: dict, entry: Field, own_namespace: str) -> Iterator[Reference]:
    found = False
    for value, path in _walk(data, entry.field):
        found = True
        if isinstance(value, dict):
            name = value.get(entry.name)
            kind = value.get(entry.kind_from) if entry.kind_from else entry.kind
            kind = kind or entry.kind_default
            namespace = value.get(entry.namespace_from) if entry.namespace_from else None
            optional = entry.optional or bool(entry.optional_from and value.get(entry.optional_from))
        elif isinstance(value, str) and entry.kind_from is None:
            name, kind, namespace, optional = value, entry.kind, None, entry.optional
        else:
            continue
        if not name or not kind or (entry.kinds and kind not in entry.kinds):
            continue
        if entry.wildcard is not None and str(name) == entry.wildcard:
            continue
        checked, group = _target_group(entry, value, str(kind))
        if not checked:
            continue
        # A mapping's line is its name's: that is where a wrong name is fixed.
        at = path + (entry.name,) if isinstance(value, dict) else path
        yield Reference(at, str(kind), group, str(name), str(namespace or own_namespace), bool(namespace),
                        optional, entry)
    if not found and entry.default_flag and (not entry.when or _get(data, entry.when)):
        # The field is absent: the controller falls back to one of its flags.
        parent = entry.field[:-1]
        yield Reference(parent, str(entry.kind), entry.group if isinstance(entry.group, str) else None, None,
                        own_namespace, False, False, entry)


def references_of(data: dict) -> list[Reference]:
    """Every reference ``data`` makes (its namespace: ``metadata.namespace``,
    ``default`` when it names none)."""
    meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    own_namespace = str(meta.get("namespace") or "default")
    table = load()
    entries = list(table.every_object)
    kind_entry = entry_for(data)
    if kind_entry is not None:
        entries += list(kind_entry.fields)
    out: list[Reference] = []
    for entry in entries:
        if entry.makes:
            continue
        out += list(_references(data, entry, own_namespace))
    return out


def made_by(data: dict) -> list[Reference]:
    """The objects ``data``'s controller makes from it (``makes`` entries)."""
    kind_entry = entry_for(data)
    if kind_entry is None:
        return []
    meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    own_namespace = str(meta.get("namespace") or "default")
    out: list[Reference] = []
    for entry in kind_entry.fields:
        if entry.makes and (not entry.when or _get(data, entry.when)):
            out += list(_references(data, entry, own_namespace))
    return out
