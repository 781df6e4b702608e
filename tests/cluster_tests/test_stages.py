"""Stages of the run that proofs run ahead wait for: the page blocks done
with a cluster, or done pushing to the served snapshot."""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from cluster.environment import YIELDING_NICE, TierEnvironment
from cluster.scenarios import doc_blocks
from harness.model import Block, Mode, Origin


def block(page: str, index: int, target: str, text: str) -> Block:
    return Block(page=page, index=index, lang="bash", attrs="", text=text, origins=[Origin(page, 10 + index)],
                 fence=Origin(page, 9 + index), mode=Mode.CLUSTER, options={"cluster": target})


def stub_env() -> TierEnvironment:
    """An environment with only what running proofs ahead needs (no
    clusters, no processes)."""
    env = TierEnvironment.__new__(TierEnvironment)
    env.runner = SimpleNamespace(live=True)
    env.root, env.closed, env._lock = ".", False, threading.Lock()
    env._proofs, env._threads, env._once, env._stages = {}, [], {}, {}
    return env


def test_each_stage_falls_after_the_last_block_that_needs_it(tmp_path) -> None:
    snippets = tmp_path / "snippets"
    snippets.mkdir()
    (snippets / "publish.sh").write_text('#!/bin/sh\ngit -C "$dir" push --quiet origin "$tag"\n', encoding="utf-8")
    (snippets / "wrapper.sh").write_text("#!/bin/sh\nexec ./snippets/publish.sh \"$@\"\n", encoding="utf-8")
    (snippets / "look.sh").write_text("#!/bin/sh\nkubectl get ns\n", encoding="utf-8")
    blocks = [
        block("docs/a.md", 0, "development", "kubectl get ns"),
        block("docs/a.md", 1, "staging", "./snippets/wrapper.sh 1.0.0"),  # pushes through another procedure
        block("docs/b.md", 0, "staging", "flux get sources git"),
        block("docs/b.md", 1, "sandbox", "./snippets/look.sh"),
    ]
    points = doc_blocks.stage_points(blocks, tmp_path)
    assert points[("docs/a.md", 0)] == [doc_blocks.done_with("development")]
    assert points[("docs/a.md", 1)] == [doc_blocks.DONE_PUSHING]
    assert points[("docs/b.md", 0)] == [doc_blocks.done_with("staging")]
    assert points[("docs/b.md", 1)] == [doc_blocks.done_with("sandbox")]
    # Nothing of the pages runs on production: a proof there need not wait.
    assert points[None] == [doc_blocks.done_with("production")]
    assert sorted(k for keys in points.values() for k in keys) == sorted(doc_blocks.stages())


@pytest.mark.parametrize("text", [
    "git push --quiet origin HEAD",
    "git -c user.name=x -C clone push origin main",
    "sed -i s/a/b/ f && git commit -qam x && git push",
    "flux bootstrap git --url=$PLATFORM_GIT_URL",
])
def test_a_push_is_seen_in_the_block(tmp_path, text: str) -> None:
    assert doc_blocks.pushes(block("docs/a.md", 0, "staging", text), tmp_path)


@pytest.mark.parametrize("text", ["git pull --quiet", "kubectl get ns", "git log --oneline | head -1",
                                  "./snippets/missing.sh"])
def test_no_push_is_read_into_a_block_without_one(tmp_path, text: str) -> None:
    assert not doc_blocks.pushes(block("docs/a.md", 0, "staging", text), tmp_path)


def test_the_procedures_the_pages_run_are_read_for_pushes() -> None:
    from harness.model import PROJECT_ROOT

    assert doc_blocks.pushes(block("docs/x.md", 0, "production", "./snippets/flux-bootstrap.sh production"),
                             PROJECT_ROOT)
    assert not doc_blocks.pushes(block("docs/x.md", 0, "sandbox", "./snippets/sandbox-clean-down.sh"), PROJECT_ROOT)


def test_a_proof_that_waits_for_a_stage_starts_once_the_run_reaches_it() -> None:
    env = stub_env()
    order = []
    env.ahead_proof("promotion", lambda: order.append("promotion") or "promoted",
                    after=(env.stage(doc_blocks.done_with("staging")), env.stage(doc_blocks.DONE_PUSHING)))
    env.reach(doc_blocks.done_with("staging"))
    time.sleep(0.05)
    assert order == [], "the proof started before every stage it waits for was reached"
    env.reach(doc_blocks.DONE_PUSHING, doc_blocks.DONE_PUSHING)  # reaching twice is harmless
    assert env.proof_result("promotion", lambda: None) == "promoted"
    assert order == ["promotion"]


def test_a_proof_waiting_for_a_stage_the_run_never_reaches_ends_with_the_tier() -> None:
    env = stub_env()
    ran = []
    env.ahead_proof("receiver", lambda: ran.append("receiver"), after=(env.stage(doc_blocks.done_with("development")),))
    # The teardown, with nothing else to take down.
    env.runner.live = False
    env.keep, env.git, env.clusters, env.registry, env._stops = True, None, {}, None, []
    env.close()
    with pytest.raises(RuntimeError, match="being taken down"):
        env._proofs["receiver"].result(timeout=10)  # a wait that never ends fails here
    assert ran == []


def test_the_page_blocks_reach_each_stage_as_its_last_block_is_done(monkeypatch) -> None:
    env = stub_env()
    reached: list[tuple[str, list[str]]] = []
    current = []
    env.reach = lambda *keys: reached.append((current[-1] if current else "before", list(keys)))
    blocks = [block("docs/a.md", 0, "development", "kubectl get ns"),
              block("docs/a.md", 1, "staging", "git push"),
              block("docs/a.md", 2, "sandbox", "kubectl get ns")]

    def run_page(env, page, page_blocks, all_blocks, test, after):
        for b in doc_blocks._paced(page_blocks, after):
            current.append(f"{b.page}:{b.index}")
        return []

    monkeypatch.setattr(doc_blocks, "run_page", run_page)
    monkeypatch.setattr(doc_blocks, "fetch_now", lambda env, clusters: None)
    monkeypatch.setattr(doc_blocks, "made_for", lambda env, blocks: [])
    doc_blocks.run(env, blocks)
    assert reached[0] == ("before", [doc_blocks.done_with("production")])
    assert reached[1] == ("docs/a.md:0", [doc_blocks.done_with("development")])
    assert reached[2] == ("docs/a.md:1", [doc_blocks.done_with("staging"), doc_blocks.DONE_PUSHING])
    assert reached[3] == ("docs/a.md:2", [doc_blocks.done_with("sandbox")])
    assert reached[-1][1] == doc_blocks.stages(), "the end of the page blocks reaches every stage"


def test_a_stage_future_is_one_per_key() -> None:
    env = stub_env()
    first = env.stage("x")
    assert env.stage("x") is first
    assert isinstance(first, concurrent.futures.Future) and not first.done()
    env.reach("x")
    assert first.done()


@pytest.mark.skipif(not hasattr(os, "setpriority") or not os.path.exists("/proc/self/stat"),
                    reason="per-thread nice values are Linux's")
def test_a_yielding_proof_and_what_it_starts_run_at_a_lower_priority() -> None:
    env = stub_env()
    seen = {}

    def proof():
        seen["thread"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        child = subprocess.run(["sh", "-c", "cut -d' ' -f19 /proc/self/stat"], capture_output=True, text=True)
        seen["child"] = int(child.stdout)

    env.ahead_proof("fork", proof, yielding=True)
    env.proof_result("fork", lambda: None)
    lower = min(19, os.getpriority(os.PRIO_PROCESS, 0) + YIELDING_NICE)
    assert seen == {"thread": lower, "child": lower}
    env.ahead_proof("promotion", lambda: seen.update(other=os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))
    env.proof_result("promotion", lambda: None)
    assert seen["other"] == os.getpriority(os.PRIO_PROCESS, 0), "a proof that is not yielding runs as the test does"


@pytest.mark.parametrize("ending", [AssertionError("a block failed"), pytest.skip.Exception("no block"), None])
def test_the_proofs_after_the_pages_go_on_however_the_pages_ended(ending) -> None:
    env = stub_env()
    try:
        with doc_blocks.then_done(env):
            if ending is not None:
                raise ending
    except BaseException as error:  # noqa: BLE001
        assert error is ending
    assert all(env.stage(key).done() for key in doc_blocks.stages())


@pytest.mark.parametrize("ending", [KeyboardInterrupt("signal 2"), SystemExit(1)])
def test_an_ending_run_starts_no_proof_that_waits_for_the_pages(ending) -> None:
    env = stub_env()
    with pytest.raises(type(ending)):
        with doc_blocks.then_done(env):
            raise ending
    assert not any(env.stage(key).done() for key in doc_blocks.stages())


@pytest.mark.parametrize("chosen", [None, "/somewhere/the/user/chose"])
def test_kubectl_and_flux_cache_in_the_runs_folder_while_it_runs(monkeypatch, tmp_path, chosen) -> None:
    """kubectl and flux keep discovery and HTTP answers under ~/.kube/cache
    unless KUBECACHEDIR says otherwise: while a live tier runs, it points
    into the run's folder (which goes with the run); afterwards it is as
    the user had it."""
    from cluster import environment

    if chosen is None:
        monkeypatch.delenv(environment.KUBE_CACHE, raising=False)
    else:
        monkeypatch.setenv(environment.KUBE_CACHE, chosen)
    before = environment.kube_cache_in(str(tmp_path))
    assert before == chosen
    assert os.environ[environment.KUBE_CACHE] == str(tmp_path / "kube-cache")
    environment.kube_cache_back(before)
    assert os.environ.get(environment.KUBE_CACHE) == chosen
