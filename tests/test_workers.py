"""The pages' blocks on pytest-xdist workers (``workers.pages``): the
controller collects them once and each worker reads that collection; a
worker whose controller's collection failed, or that runs alone, collects
them itself."""

from __future__ import annotations

import pickle
from types import SimpleNamespace

import pytest

import workers
from harness.model import Block, Mode, Origin


def block(text: str) -> Block:
    return Block(page="docs/x.md", index=0, lang="bash", attrs="", text=text, origins=[Origin("docs/x.md", 4)],
                 fence=Origin("docs/x.md", 3), mode=Mode.LOCAL)


def collector(answer):
    calls = []

    def collect(config):
        calls.append(config)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return collect, calls


def test_a_worker_reads_the_controllers_collection(tmp_path) -> None:
    path = tmp_path / "pages.pickle"
    collect, calls = collector(([block("echo controller")], []))
    workers._collect_pages_into(path, SimpleNamespace(), collect)
    assert len(calls) == 1
    own, own_calls = collector(([block("echo worker")], []))
    blocks, problems = workers.pages(SimpleNamespace(workerinput={workers.PAGES_INPUT: str(path)}), own)
    assert [b.text for b in blocks] == ["echo controller"] and problems == []
    assert own_calls == [], "the worker collected the pages again"


def test_a_failed_collection_leaves_each_worker_to_collect_and_report(tmp_path) -> None:
    path = tmp_path / "pages.pickle"
    workers._collect_pages_into(path, SimpleNamespace(), collector(ValueError("mkdocs.yml does not load"))[0])
    assert path.read_bytes() == b"", "the controller's failure is not passed on as a collection"
    config = SimpleNamespace(workerinput={workers.PAGES_INPUT: str(path)})
    with pytest.raises(ValueError, match="does not load"):  # raised in the worker, as in one process
        workers.pages(config, collector(ValueError("mkdocs.yml does not load"))[0])
    own, calls = collector(([block("echo worker")], []))
    assert [b.text for b in workers.pages(config, own)[0]] == ["echo worker"] and len(calls) == 1


def test_a_worker_waits_for_the_collection_in_progress(tmp_path, monkeypatch) -> None:
    path = tmp_path / "pages.pickle"
    waited = []

    def sleep(seconds):  # the controller finishes while the worker waits
        waited.append(seconds)
        path.write_bytes(pickle.dumps(([block("echo late")], [])))

    monkeypatch.setattr(workers.time, "sleep", sleep)
    blocks, _ = workers.pages(SimpleNamespace(workerinput={workers.PAGES_INPUT: str(path)}),
                              collector(AssertionError("collected again"))[0])
    assert waited and [b.text for b in blocks] == ["echo late"]


def test_without_workers_the_pages_are_collected_here() -> None:
    own, calls = collector(([block("echo alone")], []))
    assert [b.text for b in workers.pages(SimpleNamespace(), own)[0]] == ["echo alone"] and len(calls) == 1


def test_a_group_that_loadgroup_would_not_keep_together_is_named() -> None:
    """pytest-xdist keeps an ``xdist_group`` on one worker by a ``@group``
    suffix on the test's node id; a pytest that drops it spreads the group
    (each worker then starts the group's module fixtures), and the workers
    warn with the first such test."""
    class Item:
        def __init__(self, nodeid: str, group: str | None) -> None:
            self.nodeid, self.group = nodeid, group

        def get_closest_marker(self, name: str):
            return self.group if name == "xdist_group" else None

    config = SimpleNamespace(getvalue=lambda name: name == "loadgroup")
    items = [Item("tests/test_a.py::test_x@sshgit", "sshgit"), Item("tests/test_a.py::test_y", "sshgit"),
             Item("tests/test_b.py::test_z", None)]
    assert workers.ungrouped_tests(config, items) == ["tests/test_a.py::test_y"]
    assert workers.ungrouped_tests(SimpleNamespace(getvalue=lambda name: False), items) == []
