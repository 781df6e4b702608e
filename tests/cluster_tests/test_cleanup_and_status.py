"""Clean-up by prefix, readiness parsing, the sandbox's dangling-finaliser
check, the tree lookups and the skip reasons: all without a cluster."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cluster import clean, preflight, status, tree
from cluster.scenarios.sandbox import dangling
from harness.model import PROJECT_ROOT


def test_only_prefixed_clusters_and_containers_are_leftovers() -> None:
    clusters, containers = clean.leftovers(
        "kind\ngwp-staging\nstaging\ngwp-sandbox\n",
        "gwp-staging-control-plane\ngwp-registry\nkind-registry\nmy-gwp-thing\ngwp-sandbox-control-plane\n",
    )
    assert clusters == ["gwp-staging", "gwp-sandbox"]
    assert containers == ["gwp-registry"]
    assert clean.commands("kind", "docker", clusters, containers) == [
        ["kind", "delete", "cluster", "--name=gwp-staging"],
        ["kind", "delete", "cluster", "--name=gwp-sandbox"],
        ["docker", "rm", "--force", "gwp-registry"],
    ]
    assert clean.commands("kind", "docker", [], []) == []


def test_clean_without_docker_engine_exits_0_and_says_why(capsys, monkeypatch) -> None:
    import docker_engine
    from cluster import egress

    def unavailable(docker=None, start=True):
        raise docker_engine.EngineUnavailable("no Docker engine answers (x)")

    monkeypatch.setattr(docker_engine, "find", unavailable)
    monkeypatch.setattr(preflight, "find_tool", lambda name: f"/opt/{name}")
    monkeypatch.setattr(clean, "kwok_leftovers", lambda: ([], []))  # never this machine's real processes
    # never this machine's real engine, routes or mounts
    monkeypatch.setattr(egress, "leftovers", lambda: [])
    monkeypatch.setattr(egress, "remove_leftovers", lambda: None)
    monkeypatch.setattr(docker_engine, "own_pid", lambda: None)
    monkeypatch.setattr(docker_engine, "leftover_processes", lambda: [])
    monkeypatch.setattr(docker_engine, "leftover_mounts", lambda: [])
    assert clean.main([]) == 0
    out = capsys.readouterr().out
    assert "no kind clusters to clean: no Docker engine answers (x)" in out


def item(kind, name, ready, message="", **meta):
    return {"kind": kind, "metadata": {"name": name, "namespace": "flux-system", **meta},
            "status": {"conditions": [{"type": "Ready", "status": ready, "message": message}]}}


def test_ready_states_and_messages() -> None:
    got = status.states({"items": [item("Kustomization", "apps", "False", "dependency not ready"),
                                   item("HelmRelease", "podinfo", "True"), {"kind": "Kustomization",
                                   "metadata": {"name": "new"}}]})
    assert [s.ready for s in got] == [False, True, False]
    assert str(got[0]) == "Kustomization flux-system/apps: not Ready: dependency not ready"
    assert got[2].message == "no Ready condition yet"


def test_objects_stuck_in_deletion_are_dangling() -> None:
    stuck = item("Kustomization", "apps", "False", deletionTimestamp="2026-01-01T00:00:00Z",
                 finalizers=["finalizers.fluxcd.io"])
    deleting_cleanly = item("Kustomization", "gone", "False", deletionTimestamp="2026-01-01T00:00:00Z")
    assert dangling({"kustomizations": {"items": [stuck, deleting_cleanly, item("Kustomization", "x", "True")]}}) \
        == ["kustomizations flux-system/apps (finalizers: finalizers.fluxcd.io)"]


@pytest.mark.skipif(not (PROJECT_ROOT / "clusters" / "production").is_dir(), reason="no clusters/ in the tree yet")
def test_production_pin_and_moving_it_in_a_copy(tmp_path: Path) -> None:
    pin = tree.production_pin(PROJECT_ROOT)
    assert pin
    copy = tmp_path / "tree"
    shutil.copytree(PROJECT_ROOT / "clusters", copy / "clusters")
    changed = tree.move_pin(copy, pin, "9.9.9")
    assert tree.production_pin(copy) == "9.9.9"
    assert (PROJECT_ROOT / changed).read_text() != (copy / changed).read_text()
    assert tree.production_pin(PROJECT_ROOT) == pin, "the tree under test changed"
    with pytest.raises(LookupError, match="expected one `tag: 1.2.3` line"):
        tree.move_pin(copy, "1.2.3", "1.2.4")


def test_skip_reason_names_each_missing_piece(monkeypatch) -> None:
    monkeypatch.setattr(preflight, "find_tool", lambda name: None if name in ("kind", "flux") else f"/opt/{name}")
    import docker_engine

    monkeypatch.setattr(preflight, "docker_engine_problem", lambda docker, timeout=20: "Docker engine not reachable (x)")
    monkeypatch.setattr(docker_engine, "can_start_own", lambda: False)
    monkeypatch.setattr(preflight, "kind_images_missing", lambda: [])
    found = preflight.check()
    reason = found.skip_reason()
    assert not found.ok
    assert reason.startswith("cluster tier cannot run here: Docker engine not reachable (x)")
    assert "kind not found" in reason and "flux not found" in reason and "kubectl not found" not in reason


def test_docker_engine_problem_quotes_docker(tmp_path: Path) -> None:
    fake = tmp_path / "docker"
    fake.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon at unix:///x.sock' >&2\nexit 1\n")
    fake.chmod(0o755)
    assert "Cannot connect to the Docker daemon at unix:///x.sock" in preflight.docker_engine_problem(str(fake))
    fake.write_text("#!/bin/sh\necho 27.3.1\n")
    assert preflight.docker_engine_problem(str(fake)) is None


def test_marks_and_step_timings_go_to_one_file(tmp_path, monkeypatch) -> None:
    import json
    import time
    from types import SimpleNamespace

    from cluster.environment import MARK, TIMINGS, TierEnvironment

    started = time.monotonic()
    env = SimpleNamespace(runner=SimpleNamespace(timings=[(started, started + 2, "staging: bootstrap")]),
                          started=started)
    TierEnvironment.mark(env, "staging bootstrapped")
    monkeypatch.setenv(TIMINGS, str(tmp_path / "timings.json"))
    TierEnvironment.write_timings(env)
    rows = json.loads((tmp_path / "timings.json").read_text(encoding="utf-8"))
    assert rows[0] == [0.0, 2.0, "staging: bootstrap"]
    start, end, what = rows[1]
    assert start == end and what == MARK + "staging bootstrapped"
