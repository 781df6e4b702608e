"""The run's one API server (``harness.apiserver``) in the pytest wiring.

The controlling process (or the only one, with ``-n 0``) owns it: it makes
its folder when the run starts, starts it as soon as the collected tests
include the API-server check and the last run made of the same inputs had
to ask it something (``apiserver.predicted_needed``), so that its start-up
overlaps the other tests, and stops it when the run ends. Workers find the
folder in their ``workerinput``; a worker that needs the server when it was
not started asks the owner through the folder (``apiserver.connect``).
"""

from __future__ import annotations

import pytest

from harness import apiserver
from harness.model import PROJECT_ROOT

INPUT = "docs_test_api_server"
OWNER_KEY = pytest.StashKey["apiserver.Owner | None"]()
PREDICTION_KEY = pytest.StashKey["str | None"]()
USERS = ("api-server", "api_server")  # in the ids of the tests that use it


def configure(config: pytest.Config) -> None:
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        apiserver.use(workerinput.get(INPUT))
        return
    owner = None
    if not config.option.collectonly and apiserver.missing_reason(PROJECT_ROOT) is None:
        owner = apiserver.Owner(PROJECT_ROOT)
        apiserver.use(owner.folder)
    config.stash[OWNER_KEY] = owner


def worker_input(config: pytest.Config) -> str | None:
    owner = config.stash.get(OWNER_KEY, None)
    return str(owner.folder) if owner is not None else None


def collected(config: pytest.Config, ids: list[str]) -> None:
    """Start the server now when the run will want it."""
    owner = config.stash.get(OWNER_KEY, None)
    if owner is None or PREDICTION_KEY in config.stash:
        return
    if not any(word in node_id for node_id in ids for word in USERS):
        return
    key = config.stash[PREDICTION_KEY] = apiserver.prediction_key(PROJECT_ROOT)
    if apiserver.predicted_needed(key, PROJECT_ROOT):
        owner.start()


def unconfigure(config: pytest.Config) -> None:
    owner = config.stash.get(OWNER_KEY, None)
    if owner is None:
        return
    used = (owner.folder / "used").exists()
    apiserver.remember(config.stash.get(PREDICTION_KEY, None), used, PROJECT_ROOT)
    owner.stop()
