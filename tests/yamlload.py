"""YAML as the harness reads it: with libyaml's parser where PyYAML was
built with it (about ten times faster than its pure-Python parser; the
offline tier reads the Flux CRDs, versions.yaml and the tree many times),
else PyYAML's own. Safe loading either way: plain data, no Python objects."""

from __future__ import annotations

import yaml

Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load(stream):
    """One document (``yaml.safe_load``)."""
    return yaml.load(stream, Loader=Loader)


def load_all(stream):
    """Every document, lazily (``yaml.safe_load_all``)."""
    return yaml.load_all(stream, Loader=Loader)
