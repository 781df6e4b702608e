"""The diagrams check on a page of diagrams in a small temporary tree (the
project's mkdocs.yml, its hooks, versions.yaml and macros, the page and one included file): good
diagrams pass, and each broken one fails at the page line (and tree file
line, when included) of the offending diagram line, with mermaid's message.
One tree and one node process serve all the cases."""

from __future__ import annotations

import shutil

import pytest

from harness import extract
from harness.checks import diagrams
from harness.model import PROJECT_ROOT, Context, Mode, Outcome
from harness.report import Report

PAGE = "docs/diagram-fixture.md"
TREE_FILE = "harness-fixture/flow.mmd"

FILES = {
    TREE_FILE: """\
%% the flow the page includes
flowchart LR
    a --> b
# --8<-- [start:broken]
flowchart LR
    a --> b
    b --> c[unclosed
# --8<-- [end:broken]
""",
    PAGE: """\
# Diagrams

```mermaid
flowchart LR
    a[Git] -- "pull" --> b[(cluster)]
```

```mermaid
sequenceDiagram
    A->>B: hello
```

```mermaid
flowchart LR
    a --> b
    b -->> c
    c --> d
```

```mermaid
---
title: commented
---
flowchart TB
    %% a comment mermaid removes before parsing

    a --> b
    b --> c(unclosed
```

```mermaid
flowchat LR
    a --> b
```

```mermaid
flowchart LR
    subgraph dev["development"]
        d[(one)] --)> s[(two)]
    end
    subgraph prod["production"]
        p[(three)]
    end
```

!!! note "Included"

    ```mermaid
    --8<-- "harness-fixture/flow.mmd:broken"
    ```
""",
}


def page_line(text: str) -> int:
    """The 1-based page line that holds ``text`` (it occurs once)."""
    lines = FILES[PAGE].split("\n")
    hits = [n for n, line in enumerate(lines, 1) if text in line]
    assert len(hits) == 1, f"{text!r} is on lines {hits} of the fixture page"
    return hits[0]


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    reason = diagrams.missing_reason()
    if reason is not None:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("diagrams")
    for name in ("mkdocs.yml", "versions.yaml", "reviewed.yaml", "site_macros.py"):
        shutil.copyfile(PROJECT_ROOT / name, root / name)
    shutil.copytree(PROJECT_ROOT / "hooks", root / "hooks",  # mkdocs.yml loads them
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name, text in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    problems: list = []
    blocks = extract.collect(root, problems=problems, page=PAGE)
    ctx = Context(root=root, blocks=blocks, only_page=PAGE, problems=problems)
    return ctx, diagrams.run(ctx)


def findings_at(findings, where: str, outcome: Outcome) -> list[str]:
    return [str(f) for f in findings if f.outcome is outcome and (
        str(f).startswith(where + ":") or str(f).startswith(where + " ("))]


def assert_failure(findings, where: str, *words: str) -> None:
    hits = findings_at(findings, where, Outcome.FAILED)
    failed = [str(f) for f in findings if f.outcome is Outcome.FAILED]
    assert hits, f"expected a failure at {where}, got: {failed or 'no failures'}"
    for word in words:
        assert any(word in h for h in hits), f"no failure at {where} mentions {word!r}: {hits}"


def test_every_mermaid_block_is_checked(checked):
    ctx, findings = checked
    mermaid = [b for b in ctx.blocks if b.lang == "mermaid"]
    assert len(mermaid) == 7 and all(b.mode is Mode.NONE for b in mermaid)
    assert sorted(f.block.index for f in findings) == sorted(b.index for b in mermaid)
    failed = [f for f in findings if f.outcome is Outcome.FAILED]
    assert len(failed) == 5, [str(f) for f in failed]


def test_good_diagrams_pass_and_count_as_tested(checked):
    ctx, findings = checked
    passed = [f for f in findings if f.outcome is Outcome.PASSED]
    assert [f.block.fence.line for f in passed] == [page_line('a[Git]') - 2, page_line("A->>B") - 2]
    report = Report(ctx.blocks)
    report.add(findings)
    summary = "\n".join(report.lines())
    assert f"{PAGE}: 7 blocks, 7 tested (diagrams 7); 2 passed, 5 failed" in summary, summary


def test_syntax_error_names_the_page_line(checked):
    _, findings = checked
    assert_failure(findings, f"{PAGE}:{page_line('b -->> c')}", "[diagrams]", "mermaid 11.", "Expecting")


def test_line_counts_front_matter_comments_and_blank_lines(checked):
    _, findings = checked
    assert_failure(findings, f"{PAGE}:{page_line('b --> c(unclosed')}", "cannot parse")


def test_unknown_diagram_type_fails_at_its_first_line(checked):
    _, findings = checked
    assert_failure(findings, f"{PAGE}:{page_line('flowchat LR')}", "No diagram type detected")


def test_a_mistake_noticed_lines_later_is_named_at_its_own_line(checked):
    """Mermaid notices the bad arrow only at `subgraph prod`, two lines on."""
    _, findings = checked
    assert_failure(findings, f"{PAGE}:{page_line('d[(one)] --)> s')}", "cannot parse")
    assert not findings_at(findings, f"{PAGE}:{page_line('subgraph prod')}", Outcome.FAILED)


def test_included_diagram_names_page_and_tree_lines(checked):
    _, findings = checked
    where = f"{PAGE}:{page_line('flow.mmd:broken')} ({TREE_FILE}:7)"
    assert_failure(findings, where, "cannot parse")


def test_without_node_every_diagram_is_skipped_with_the_reason(checked, monkeypatch):
    ctx, _ = checked
    monkeypatch.setenv("PATH", "/nonexistent")
    findings = diagrams.run(ctx)
    assert len(findings) == 7
    assert all(f.outcome is Outcome.SKIPPED and "node not found" in f.message for f in findings)
    report = Report(ctx.blocks)
    report.add(findings)
    summary = "\n".join(report.lines())
    assert "7 skipped" in summary and "checks skipped for a missing tool" in summary, summary
