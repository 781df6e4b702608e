"""A small page and tree files, with the project's site configuration, in a
scratch project of their own, so the mutation tests never depend on (or
touch) the real pages."""

from __future__ import annotations

import os
import shutil
import subprocess
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


# What the pages are read with: the project's own site configuration.
SITE_FILES = ("mkdocs.yml", "versions.yaml", "reviewed.yaml", "site_macros.py")
SITE_DIRS = ("hooks",)  # mkdocs.yml's hooks, which the configuration loads
GIT_IDENTITY = {"GIT_AUTHOR_NAME": "docs-test", "GIT_AUTHOR_EMAIL": "docs-test@example.org",
                "GIT_COMMITTER_NAME": "docs-test", "GIT_COMMITTER_EMAIL": "docs-test@example.org"}


def make(tmp_path: Path) -> Path:
    """A small project: the project's site configuration (mkdocs.yml, its
    hooks and macros, versions.yaml and reviewed.yaml), the
    fixture page and tree files, committed to a git repository of its own
    (the local blocks run git). Small, so that each test's copy is cheap to
    make and to remove."""
    root = tmp_path / "tree"
    root.mkdir(parents=True)
    for name in SITE_FILES:
        shutil.copyfile(PROJECT_ROOT / name, root / name)
    for name in SITE_DIRS:
        shutil.copytree(PROJECT_ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    write(root, FILES)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), **GIT_IDENTITY}
    for args in (["init", "--quiet", "--template=", "--initial-branch", "main"], ["add", "--all"],
                 ["commit", "--quiet", "--no-gpg-sign", "-m", "fixture"]):
        subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True, timeout=60)
    return root


def copy(base: Path, tmp_path: Path) -> Path:
    """A copy of a tree ``make`` wrote, for one test to mutate (cheaper than
    ``make``: the project is read once per run). Its files are hard links to
    the base's: a test changes a file with ``write`` or ``edit``, which
    replace the file (the base keeps its own), never in place."""
    return scratch.snapshot(base, tmp_path / "tree", link=True)


def write(root: Path, files: dict[str, str]) -> None:
    """Write ``files`` (relative name -> text) into ``root``, each as a new
    file (a hard link to another tree's file is replaced, not written through)."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        path.write_text(text, encoding="utf-8")


def edit(root: Path, name: str, old: str, new: str) -> None:
    path = root / name
    text = path.read_text(encoding="utf-8")
    assert old in text, f"fixture {name} no longer contains {old!r}"
    write(root, {name: text.replace(old, new)})


def context(root: Path, whole_tree: bool = False) -> Context:
    problems: list = []
    blocks = extract.collect(root, problems=problems, page=PAGE)
    return Context(root=root, blocks=blocks, only_page=None if whole_tree else PAGE, problems=problems)
