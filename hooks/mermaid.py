"""Serve Mermaid from the site itself, at the version the diagram check parses with.

Material for MkDocs draws each ```` ```mermaid ```` fence with mermaid.js in
the browser. Its bundle loads the library only when the page has not: when
``typeof mermaid == "undefined"`` as it mounts the first diagram (at
DOMContentLoaded), it adds a script tag for the floating
``https://unpkg.com/mermaid@11/dist/mermaid.min.js``. This hook makes the
site independent of that:

- it copies ``mermaid.min.js`` from the mermaid package ``npm ci`` installed
  into ``.tools/diagrams/`` (from ``tests/harness/diagrams/package-lock.json``,
  the one pin, which the diagram check parses with) into the built site as
  ``assets/javascripts/mermaid-VERSION.min.js``;
- on every page with a diagram it adds that script, followed by
  ``assets/javascripts/mermaid-palette.js`` (the dark-palette fix), before
  Material's own script runs, so Material uses this copy and loads nothing
  from another host.

The library's code is not part of the repository; a build without the
installed package, or with another version of it than the pin, stops with the
command that installs it.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.utils import get_relative_url

PIN = "tests/harness/diagrams/package.json"
PACKAGE = ".tools/diagrams/node_modules/mermaid"
BUILT = "dist/mermaid.min.js"
ASSETS = "assets/javascripts"
PALETTE = f"{ASSETS}/mermaid-palette.js"  # in docs/, copied by mkdocs like any asset
INSTALL = "PYTHONPATH=tests python -m harness.checks.diagrams"
# A diagram as pymdownx.superfences writes it (mkdocs.yml custom_fences).
DIAGRAM = re.compile(r'<pre class="mermaid"')

_state: dict[str, str] = {}


def pinned_version(root: Path) -> str:
    """The mermaid version tests/harness/diagrams/package.json pins."""
    return json.loads((root / PIN).read_text(encoding="utf-8"))["dependencies"]["mermaid"]


def installed_script(root: Path) -> tuple[Path, str]:
    """(mermaid.min.js of the installed package, its version); raises
    PluginError, with the command that fixes it, unless the pinned version
    is installed."""
    pinned = pinned_version(root)
    package = root / PACKAGE
    manifest = package / "package.json"
    script = package / BUILT
    if not manifest.is_file() or not script.is_file():
        raise PluginError(
            f"mermaid is not installed in {PACKAGE}: the site serves the pinned mermaid {pinned} "
            f"({PIN}) itself. Install it with `{INSTALL}` (npm ci; every nox session that builds "
            "the site does this first)."
        )
    version = json.loads(manifest.read_text(encoding="utf-8"))["version"]
    if version != pinned:
        raise PluginError(
            f"{PACKAGE} holds mermaid {version}, but {PIN} pins {pinned}: "
            f"run `{INSTALL}` to install the pinned version."
        )
    return script, version


def script_path(version: str) -> str:
    """Where the site serves mermaid: the version in the name, so a browser
    never keeps an old copy after the pin moves."""
    return f"{ASSETS}/mermaid-{version}.min.js"


def on_config(config, **kwargs):
    root = Path(config.config_file_path).resolve().parent
    script, version = installed_script(root)
    _state.update(source=str(script), target=script_path(version))
    return config


def on_post_page(output: str, page, config, **kwargs) -> str:
    """Load the local mermaid, then the palette fix, on a page with a diagram."""
    if not DIAGRAM.search(output):
        return output
    tags = "".join(
        f'<script src="{get_relative_url(path, page.url)}"></script>'
        for path in (_state["target"], PALETTE)
    )
    head, sep, tail = output.rpartition("</body>")
    if not sep:
        raise PluginError(f"{page.file.src_uri}: the page has no </body> to add the mermaid script to")
    return f"{head}{tags}{sep}{tail}"


def on_post_build(config, **kwargs) -> None:
    target = Path(config.site_dir) / _state["target"]
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_state["source"], target)
