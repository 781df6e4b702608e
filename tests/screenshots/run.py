"""Every diagram drawn in a real browser, every code block's checked-by mark
shown, and a screenshot of every page (``nox -s docs-screenshots``).

    python tests/screenshots/run.py [--page docs/x.md] [--scheme light|dark|both] [--width PX] [--phone-width PX] [--out DIR]

1. builds the site (``mkdocs build --strict``) into a temporary folder, and
   checks that every mermaid fence of a page became a ``<pre class="mermaid">``
   in its HTML (not a highlighted code block);
2. serves it on 127.0.0.1 and opens each page with code blocks in headless
   Chromium (``tests/harness/diagrams/render.mjs``, driven by the pinned
   playwright-core), once per palette: light (``default``) and dark
   (``slate``), as Material picks them from the browser's colour scheme.
   Every request to another host is refused, as with the network off, and
   fails the page: the site serves mermaid itself (``hooks/mermaid.py``);
3. waits until every diagram is drawn, prints ``N diagrams, N rendered`` and
   ``N blocks, N marks`` per page, and saves a full-page PNG per page and
   palette, one PNG per diagram, and one of each kind of checked-by mark
   (``hooks/checked_by.py``) with the end of the block above it, at the
   window's width and at a phone's (``marks-SCHEME-N.png``,
   ``marks-phone-SCHEME-N.png``, listed with what the mark says) into
   ``artifacts/screenshots/`` (git-ignored).

It fails when a diagram is not drawn (or draws mermaid's error picture), a
code block has no mark under it, or a page asks another host for anything,
and
notes diagrams that are shrunk to fit the page so far that their text gets
small. Chromium is ``$CHROMIUM``, else ``/usr/bin/chromium``, else
``chromium`` on PATH; without it, or without node and the pinned packages,
it says why and exits non-zero.
"""

from __future__ import annotations

import argparse
import functools
import html.parser
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import defaultdict
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))

from harness import extract  # noqa: E402
from harness.checks import diagrams  # noqa: E402
from harness.model import PROJECT_ROOT, Block  # noqa: E402

OUT_DIR = "artifacts/screenshots"
RENDER = "render.mjs"
DEFAULT_CHROMIUM = "/usr/bin/chromium"
# A diagram drawn at less than this share of its natural width has text
# smaller than about 10 px: worth a look, or a layout that fits the page.
MIN_SCALE = 0.62
# The width of a phone in CSS pixels: the marks are shot at it too.
PHONE_WIDTH = 390
TIMEOUT_MS = 20000
# Playwright's resource types of requests a script makes for data, not for
# something the page is made of.
DATA_REQUESTS = {"xhr", "fetch", "eventsource", "websocket"}


def chromium() -> str | None:
    chosen = os.environ.get("CHROMIUM")
    if chosen:
        return chosen if os.access(chosen, os.X_OK) else None
    if os.access(DEFAULT_CHROMIUM, os.X_OK):
        return DEFAULT_CHROMIUM
    return shutil.which("chromium") or shutil.which("chromium-browser")


def page_url(page: str) -> str:
    """docs/concepts/gitops.md -> concepts/gitops/ (use_directory_urls)."""
    rel = Path(page).relative_to("docs").with_suffix("")
    if rel.name == "index":
        rel = rel.parent
    return "" if str(rel) == "." else f"{rel.as_posix()}/"


class FenceCounter(html.parser.HTMLParser):
    """Counts ``<pre class="mermaid">`` and mermaid code highlighted as code."""

    def __init__(self) -> None:
        super().__init__()
        self.diagrams = 0
        self.highlighted = 0

    def handle_starttag(self, tag, attrs):
        classes = (dict(attrs).get("class") or "").split()
        if tag == "pre" and "mermaid" in classes:
            self.diagrams += 1
        if tag == "code" and "language-mermaid" in classes:
            self.highlighted += 1


def html_problems(site: Path, pages: dict[str, list[Block]]) -> list[str]:
    problems = []
    for page, blocks in pages.items():
        built = site / page_url(page) / "index.html"
        if not built.is_file():
            problems.append(f"{page}: the build has no {built.relative_to(site)}")
            continue
        counter = FenceCounter()
        counter.feed(built.read_text(encoding="utf-8"))
        if counter.diagrams != len(blocks) or counter.highlighted:
            line = f":{blocks[0].fence.line}" if blocks else ""
            problems.append(
                f"{page}{line}: {len(blocks)} mermaid fences, but the built page has "
                f"{counter.diagrams} <pre class=\"mermaid\"> and {counter.highlighted} highlighted mermaid "
                "code blocks: check the pymdownx.superfences custom fence for mermaid in mkdocs.yml"
            )
    return problems


@functools.lru_cache(maxsize=None)
def quiet_handler(directory: str):
    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=directory, **kwargs)

        def log_message(self, *args):  # no access log on the terminal
            pass

    return Handler


def render(site: Path, pages: dict[str, list[Block]], schemes: list[str], out: Path, browser: str,
           width: int = 1280, phone_width: int = 0) -> list[dict]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), quiet_handler(str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        job = {
            "chromium": browser,
            "base": f"http://127.0.0.1:{server.server_address[1]}/",
            "outDir": str(out),
            "schemes": schemes,
            "width": width,
            "phoneWidth": phone_width,
            "timeoutMs": TIMEOUT_MS,
            "pages": [
                {"page": page, "url": page_url(page), "expected": len(blocks),
                 "shot": page_url(page).strip("/").replace("/", "-") or "index"}
                for page, blocks in pages.items()
            ],
        }
        proc = subprocess.run(
            ["node", str(diagrams.source_dir() / RENDER), str(diagrams.node_modules())],
            input=json.dumps(job), capture_output=True, text=True, timeout=600,
        )
    finally:
        server.shutdown()
        server.server_close()
    if proc.returncode != 0:
        raise SystemExit(f"{diagrams.SOURCE_DIR}/{RENDER} failed (exit {proc.returncode}):\n{proc.stderr.strip()}")
    return json.loads(proc.stdout)["results"]


def summarise(results: list[dict], pages: dict[str, list[Block]]) -> tuple[list[str], int]:
    lines, failures = [], 0
    for result in results:
        blocks = pages[result["page"]]
        drawn = [d for d in result.get("diagrams", []) if d.get("drawn") and not d.get("error")]
        # Anything the page loads must come from the site; a request a script
        # makes for data (Material's repository button asks the git host for
        # its star count) is refused too, but only noted.
        requests = result.get("offHost", [])
        off_host = [r for r in requests if r.split(" ", 1)[0] not in DATA_REQUESTS]
        unmarked = result.get("blocks", 0) - result.get("marks", 0)
        ok = len(drawn) == result["expected"] and not result.get("left") and not off_host and unmarked == 0
        shot = os.path.relpath(result["screenshot"], PROJECT_ROOT) if result.get("screenshot") else "no screenshot"
        lines.append(
            f"{'ok  ' if ok else 'FAIL'} {result['page']} ({result['scheme']}): "
            f"{result['expected']} diagrams, {len(drawn)} rendered; "
            f"{result.get('blocks', 0)} blocks, {result.get('marks', 0)} marks -> {shot}"
        )
        if unmarked:
            lines.append(f"       {unmarked} code blocks have no checked-by mark under them (hooks/checked_by.py)")
        for mark in result.get("markShots", []):
            lines.append(f"       mark {os.path.relpath(mark['path'], PROJECT_ROOT)} ({mark['width']} px): "
                         f"{' '.join(mark['text'].split())}")
        if not ok:
            failures += 1
        for n, diagram in enumerate(result.get("diagrams", [])):
            where = blocks[n].fence if n < len(blocks) else result["page"]
            if not diagram.get("drawn"):
                lines.append(f"       {where}: not drawn")
            elif diagram.get("error"):
                lines.append(f"       {where}: mermaid drew its error picture (run `nox -s docs-test` for the parse error)")
            else:
                scale = diagram["width"] / diagram["naturalWidth"] if diagram["naturalWidth"] else 1
                note = ""
                if scale < MIN_SCALE:
                    note = f"  <- shrunk to {scale:.0%}: small text; make it narrower (TB instead of LR, shorter labels)"
                if diagram.get("overflow", 0) > 1:
                    note += f"  <- {diagram['overflow']} px wider than the page"
                lines.append(
                    f"       {where}: {diagram['type']} {diagram['naturalWidth']}px wide, "
                    f"drawn {diagram['width']}x{diagram['height']} ({scale:.0%}){note}"
                )
        for request in requests:
            if request in off_host:
                lines.append(f"       asked another host for {request} (refused: the site must serve "
                             "what its pages load itself; see hooks/mermaid.py)")
            else:
                lines.append(f"       note: asked another host for {request} (refused; the page works without it)")
        for error in result.get("errors", []):
            lines.append(f"       browser: {error}")
    return lines, failures


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--page", help="only this page (docs/x.md)")
    parser.add_argument("--scheme", choices=["light", "dark", "both"], default="both")
    parser.add_argument("--width", type=int, default=1280,
                        help="the browser window's width in CSS pixels (default 1280; 390 for a phone)")
    parser.add_argument("--phone-width", type=int, default=PHONE_WIDTH,
                        help=f"also shoot each kind of checked-by mark at this width (default {PHONE_WIDTH}; 0: not)")
    parser.add_argument("--out", default=OUT_DIR, help=f"where the PNGs go (default {OUT_DIR})")
    args = parser.parse_args(argv)

    browser = chromium()
    if browser is None:
        print("docs-screenshots: Chromium not found ($CHROMIUM, /usr/bin/chromium or chromium on PATH): "
              "install it (Debian: apt-get install chromium) or point $CHROMIUM at it", file=sys.stderr)
        return 2
    reason = diagrams.ensure()
    if reason is not None:
        print(f"docs-screenshots: cannot drive the browser: {reason}", file=sys.stderr)
        return 2

    # Every page with a code block, and its diagrams.
    pages: dict[str, list[Block]] = defaultdict(list)
    for block in extract.collect(PROJECT_ROOT, problems=[], page=args.page):
        pages[block.page].extend([block] if block.lang == diagrams.LANG else [])
    if not pages:
        print("docs-screenshots: no page has a code block", file=sys.stderr)
        return 0
    out = (PROJECT_ROOT / args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.png"):
        old.unlink()
    schemes = ["light", "dark"] if args.scheme == "both" else [args.scheme]

    with tempfile.TemporaryDirectory(prefix="docs-screenshots-site-") as tmp:
        site = Path(tmp)
        build = subprocess.run(
            [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(site)],
            cwd=PROJECT_ROOT, capture_output=True, text=True,
        )
        if build.returncode != 0:
            print("docs-screenshots: mkdocs build --strict failed (`nox -s docs` shows why):\n"
                  + (build.stdout + build.stderr).strip()[-3000:], file=sys.stderr)
            return 1
        problems = html_problems(site, pages)
        results = render(site, dict(pages), schemes, out, browser, args.width, args.phone_width)

    lines, failures = summarise(results, pages)
    print("\n".join(problems + lines))
    total = sum(len(b) for b in pages.values())
    marks = sum(r.get("marks", 0) for r in results) // max(1, len(schemes))
    print(f"{len(pages)} pages, {total} diagrams, {marks} checked-by marks, {len(schemes)} palettes; "
          f"screenshots in {os.path.relpath(out, PROJECT_ROOT)}/")
    if problems or failures:
        print(f"docs-screenshots: {len(problems) + failures} problems (see above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
