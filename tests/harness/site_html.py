"""What the pages of the built site load, and from where.

A reader may open the site offline, or behind a proxy that blocks CDNs, and
the diagrams must look the way the harness checked them. So the built HTML
must load nothing from another host, and every page with a diagram must load
the site's own mermaid, at the pinned version (``hooks/mermaid.py``): Material
fetches mermaid from a CDN only when the page has not loaded one itself.

``problems(site_dir, mermaid_version)`` reads every ``.html`` file of a built
site and returns one line per problem, naming the page it was built from.
"""

from __future__ import annotations

import html.parser
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

# Elements that make the browser fetch something as the page loads, and the
# attribute that names it. <a href> is a link the reader follows, not a load.
LOADS = {"script": "src", "img": "src", "iframe": "src", "source": "src", "audio": "src",
         "video": "src", "embed": "src", "object": "data"}
# <link rel=...> values that fetch their href (canonical, alternate and the
# like only name an address).
FETCHING_LINKS = {"stylesheet", "preload", "modulepreload", "prefetch", "icon", "manifest",
                  "preconnect", "dns-prefetch"}


@dataclass
class PageLoads:
    """The addresses one page loads, and whether it has a diagram."""

    loads: list[tuple[str, str]] = field(default_factory=list)  # (element, address)
    scripts: list[str] = field(default_factory=list)
    diagrams: int = 0


class LoadCollector(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = PageLoads()

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        if tag == "pre" and "mermaid" in (values.get("class") or "").split():
            self.page.diagrams += 1
        if tag == "link":
            rels = set((values.get("rel") or "").lower().split())
            if rels & FETCHING_LINKS and values.get("href"):
                self.page.loads.append((f"link rel={' '.join(sorted(rels))}", values["href"]))
            return
        attribute = LOADS.get(tag)
        if attribute and values.get(attribute):
            self.page.loads.append((tag, values[attribute]))
            if tag == "script":
                self.page.scripts.append(values[attribute])


def read_page(path: Path) -> PageLoads:
    collector = LoadCollector()
    collector.feed(path.read_text(encoding="utf-8", errors="replace"))
    collector.close()
    return collector.page


def off_host(address: str) -> bool:
    """An address with a scheme or a host of its own (``https://...``,
    ``//cdn...``) rather than a path on this site. ``data:`` is inline."""
    parts = urlsplit(address)
    return bool(parts.netloc) or (bool(parts.scheme) and parts.scheme != "data")


def page_name(site_dir: Path, html_file: Path) -> str:
    """The page a built file most likely came from, for messages:
    ``example/kind/index.html`` -> ``docs/example/kind.md``."""
    rel = html_file.relative_to(site_dir).as_posix()
    if rel == "index.html":
        return "docs/index.md"
    if rel.endswith("/index.html"):
        return f"docs/{rel[: -len('/index.html')]}.md (built as {rel})"
    return f"site/{rel}"


def resolves_to(site_dir: Path, html_file: Path, address: str) -> Path:
    """The file of the built site a relative address on ``html_file`` names."""
    base = html_file.parent.relative_to(site_dir).as_posix()
    path = posixpath.normpath(posixpath.join(base, urlsplit(address).path))
    return site_dir / path


def problems(site_dir: Path, mermaid_script: str) -> list[str]:
    """Every load from another host, and every page with a diagram that does
    not load ``mermaid_script`` (a path in the site, e.g.
    ``assets/javascripts/mermaid-11.17.2.min.js``) from the site itself."""
    site_dir = Path(site_dir)
    found: list[str] = []
    wanted = (site_dir / mermaid_script).resolve()
    for html_file in sorted(site_dir.rglob("*.html")):
        page = read_page(html_file)
        name = page_name(site_dir, html_file)
        for element, address in page.loads:
            if off_host(address):
                found.append(f"{name}: <{element}> loads {address} from another host; "
                             "serve it from the site (docs/assets/) or drop it")
        if page.diagrams:
            local = [s for s in page.scripts if not off_host(s)
                     and resolves_to(site_dir, html_file, s).resolve() == wanted]
            if not local:
                found.append(f"{name}: {page.diagrams} diagram(s), but the page does not load the site's "
                             f"own {mermaid_script}, so Material would fetch mermaid from a CDN "
                             "(hooks/mermaid.py adds it to every page with a <pre class=\"mermaid\">)")
            elif not wanted.is_file():
                found.append(f"{name}: loads {mermaid_script}, which the build did not write "
                             "(hooks/mermaid.py copies it in on_post_build)")
    return found
