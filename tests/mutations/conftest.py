"""Trees for the mutation tests: the fixture page and files are written into
one small project per run (``fixture.make``); a test that mutates it gets its
own copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from mutations import fixture


@pytest.fixture(scope="session")
def fixture_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The unmutated fixture tree, shared: tests only read it."""
    return fixture.make(tmp_path_factory.mktemp("fixture"))


@pytest.fixture
def fixture_tree(fixture_base: Path, tmp_path: Path) -> Path:
    """A copy of the fixture tree that this test may change."""
    return fixture.copy(fixture_base, tmp_path)
