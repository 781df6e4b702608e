"""A small page and tree files written into a scratch snapshot of the
project, so the mutation tests never depend on (or touch) the real pages."""

from __future__ import annotations

from pathlib import Path

from harness import extract, scratch
from harness.model import PROJECT_ROOT, Context

PAGE = "docs/harness-fixture.md"

FILES = {
    "harness-fixture/app.yaml": """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: fixture
# --8<-- [start:data]
data:
  greeting: hello
# --8<-- [end:data]
""",
    "harness-fixture/greet.sh": """\
#!/usr/bin/env bash
set -euo pipefail
# --8<-- [start:greet]
name="${1:-world}"
echo "hello, ${name}"
# --8<-- [end:greet]
""",
    PAGE: """\
---
title: Fixture
---
# Fixture {{ versions.flux.version }}

```yaml title="harness-fixture/app.yaml"
--8<-- "harness-fixture/app.yaml:data"
```

<!-- test: local timeout=20 -->
```bash
printf 'in %s\\n' "$(basename "$PWD")"
git rev-parse --short HEAD
test -z "${KUBECONFIG:-}"
```

<!-- test: output -->
```text
in tree
0123abc
```

!!! note "Indented"

    ```bash
    --8<-- "harness-fixture/greet.sh:greet"
    ```
""",
}

# Page lines the tests point at (1-based, in PAGE as written above).
YAML_INCLUDE_LINE = 7
LOCAL_FENCE_LINE = 11
OUTPUT_FIRST_LINE = 19
SCRIPT_INCLUDE_LINE = 26


def make(tmp_path: Path) -> Path:
    """A snapshot of the project with the fixture files written into it."""
    root = scratch.snapshot(PROJECT_ROOT, tmp_path / "tree")
    write(root, FILES)
    return root


def copy(base: Path, tmp_path: Path) -> Path:
    """A copy of a tree ``make`` wrote, for one test to mutate (cheaper than
    ``make``: the project is read once per run)."""
    return scratch.snapshot(base, tmp_path / "tree")


def write(root: Path, files: dict[str, str]) -> None:
    """Write ``files`` (relative name -> text) into ``root``."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def edit(root: Path, name: str, old: str, new: str) -> None:
    path = root / name
    text = path.read_text(encoding="utf-8")
    assert old in text, f"fixture {name} no longer contains {old!r}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def context(root: Path, whole_tree: bool = False) -> Context:
    problems: list = []
    blocks = extract.collect(root, problems=problems, page=PAGE)
    return Context(root=root, blocks=blocks, only_page=None if whole_tree else PAGE, problems=problems)
