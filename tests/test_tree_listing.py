"""Directory listings on the pages match the repository (harness.checks.tree_listing)."""

from __future__ import annotations

from pathlib import Path

from harness.checks import tree_listing
from harness.model import Block, Mode, Origin, Outcome
from harness.report import fail_on


def test_tree_listings(context, report):
    fail_on(report.add(tree_listing.run(context)))


LISTING = """\
.
├── clusters/                  # one directory per cluster
│   ├── development/
│   │   └── platform.yaml      # the platform source
│   └── sandbox-*/             # short-lived clones
└── snippets/
    └── clone.sh
"""


def listing_block(text: str, **options: str) -> Block:
    lines = text.splitlines()
    return Block(page="docs/x.md", index=0, lang="text", attrs="", text=text,
                 origins=[Origin("docs/x.md", 11 + i) for i in range(len(lines))],
                 fence=Origin("docs/x.md", 10), mode=Mode.TREE, options=options)


def make_tree(root: Path, *files: str) -> None:
    for name in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("x\n", encoding="utf-8")


def test_entries_are_paths_from_the_root() -> None:
    paths = [path for _, path in tree_listing.entries(listing_block(LISTING))]
    assert paths == ["clusters/", "clusters/development/", "clusters/development/platform.yaml",
                     "clusters/sandbox-*/", "snippets/", "snippets/clone.sh"]


def test_a_listing_that_matches_passes(tmp_path: Path) -> None:
    make_tree(tmp_path, "clusters/development/platform.yaml", "snippets/clone.sh", "snippets/README.md")
    findings = tree_listing.check_listing(tmp_path, listing_block(LISTING, complete="true"))
    assert [f.outcome for f in findings] == [Outcome.PASSED]


def test_an_entry_that_does_not_exist_fails_at_its_line(tmp_path: Path) -> None:
    make_tree(tmp_path, "clusters/development/platform.yaml")
    findings = tree_listing.check_listing(tmp_path, listing_block(LISTING))
    assert [str(f.where) for f in findings] == ["docs/x.md:16", "docs/x.md:17"]
    assert "directory snippets/, which does not exist" in findings[0].message


def test_complete_listing_names_a_file_it_does_not_show(tmp_path: Path) -> None:
    make_tree(tmp_path, "clusters/development/platform.yaml", "clusters/development/apps.yaml",
              "snippets/clone.sh", "snippets/lib.sh")
    findings = tree_listing.check_listing(tmp_path, listing_block(LISTING, complete="true"))
    messages = sorted(f.message for f in findings)
    assert len(messages) == 2
    assert messages[0].startswith("clusters/development/apps.yaml exists but the listing")
    assert messages[1].startswith("snippets/lib.sh exists but the listing")
