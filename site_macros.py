"""Macros the site's pages call, for mkdocs-macros (mkdocs.yml
``plugins.macros.module_name``).

- ``repository_link(text)``: from ``hooks/repository.py`` (a link to the
  repository while ``extra.repository`` is set, plain text while it is not).
- ``last_reviewed()``: one line saying when the page's time-sensitive claims
  (versions, defaults, the state of other projects) were last checked against
  their sources. The dates live in one file, ``reviewed.yaml``, which
  mkdocs.yml loads as the variable ``reviewed``. A page that calls the macro
  without an entry there, or with a date that is not a date, fails the
  strict site build and the harness's macros check.
"""

from __future__ import annotations

import datetime


def _date(value, page: str) -> datetime.date:
    if isinstance(value, datetime.date):
        return value
    try:
        return datetime.date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"reviewed.yaml: the date of {page} is `{value}`, not YYYY-MM-DD") from None


def _repository_macros():
    """hooks/repository.py, which also defines ``repository_link()``."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent / "hooks" / "repository.py"
    spec = importlib.util.spec_from_file_location("site_repository_hook", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def define_env(env) -> None:
    _repository_macros().define_env(env)

    @env.macro
    def last_reviewed() -> str:
        page = env.page.file.src_path.replace("\\", "/")
        pages = (env.variables.get("reviewed") or {}).get("pages") or {}
        if page not in pages:
            raise ValueError(
                f"{page} calls last_reviewed() but reviewed.yaml has no entry for it: "
                f"add `{page}: YYYY-MM-DD` under `pages:` with the date you checked its claims"
            )
        day = _date(pages[page], page)
        return (f"*Last reviewed on {day.day} {day:%B %Y}: the versions, defaults and "
                f"projects this page names were checked against their sources then.*")
