"""reviewed.yaml, the dates the pages' last_reviewed() macro shows: every
entry is a page that shows its date, and no date lies in the future. (A page
that calls the macro without an entry fails the site build.)"""

from __future__ import annotations

import datetime

import yamlload

from harness.model import PROJECT_ROOT

MACRO = "{{ last_reviewed() }}"


def entries() -> dict:
    with open(PROJECT_ROOT / "reviewed.yaml", encoding="utf-8") as handle:
        return (yamlload.load(handle) or {}).get("pages") or {}


def test_every_entry_is_a_page_that_shows_its_date() -> None:
    problems = []
    for page in entries():
        path = PROJECT_ROOT / "docs" / page
        if not path.is_file():
            problems.append(f"reviewed.yaml: {page} is not a page under docs/; remove the entry or fix its path")
        elif MACRO not in path.read_text(encoding="utf-8"):
            problems.append(f"reviewed.yaml: {page} does not show its date; add `{MACRO}` under its title "
                            f"or remove the entry")
    assert not problems, "\n".join(problems)


def test_no_review_date_in_the_future() -> None:
    today = datetime.date.today()
    late = [f"reviewed.yaml: {page}: {day} is after today ({today})" for page, day in entries().items()
            if isinstance(day, datetime.date) and day > today]
    assert not late, "\n".join(late)
