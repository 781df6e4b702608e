"""The verdict of `nox -s docs-screenshots` (tests/screenshots/run.py) on
what the browser reported: a page that asks another host for something it
is made of (a script, a stylesheet, a font) fails, even with every diagram
drawn; a script's request for data (the repository button's star count) is
only noted. The browser run itself needs Chromium and is not part of this
suite."""

from __future__ import annotations

import importlib.util

from harness.model import PROJECT_ROOT

spec = importlib.util.spec_from_file_location("screenshots_run", PROJECT_ROOT / "tests" / "screenshots" / "run.py")
screenshots = importlib.util.module_from_spec(spec)
spec.loader.exec_module(screenshots)


def result(*off_host: str) -> dict:
    return {"page": "docs/x.md", "scheme": "dark", "expected": 0, "diagrams": [], "errors": [],
            "screenshot": None, "offHost": list(off_host)}


def test_a_page_that_loads_from_another_host_fails():
    lines, failures = screenshots.summarise([result("script https://unpkg.com/mermaid@11/dist/mermaid.min.js")],
                                            {"docs/x.md": []})
    assert failures == 1 and lines[0].startswith("FAIL docs/x.md (dark)")
    assert any("asked another host for script https://unpkg.com/" in line for line in lines)


def test_a_request_for_data_is_noted_but_passes():
    lines, failures = screenshots.summarise([result("xhr https://api.github.com/repos/o/r")], {"docs/x.md": []})
    assert failures == 0 and lines[0].startswith("ok")
    assert any(line.strip().startswith("note: asked another host for xhr") for line in lines)
