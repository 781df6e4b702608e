"""YAML as the harness reads and writes it: with libyaml's parser and
emitter where PyYAML was built with it (about ten times faster than its
pure-Python parser; the offline tier reads the Flux CRDs, versions.yaml and
the tree many times), else PyYAML's own. Safe loading either way: plain
data, no Python objects."""

from __future__ import annotations

import yaml

Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def load(stream):
    """One document (``yaml.safe_load``)."""
    return yaml.load(stream, Loader=Loader)


def load_all(stream):
    """Every document, lazily (``yaml.safe_load_all``)."""
    return yaml.load_all(stream, Loader=Loader)


def dump(data, **options) -> str:
    """``data`` as YAML text (``yaml.safe_dump``), with libyaml's emitter
    where present."""
    return yaml.dump(data, Dumper=Dumper, **options)
