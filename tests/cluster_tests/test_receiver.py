"""The Receiver proof's pieces that need no cluster: it finds the tree's
Receiver, signs a delivery the way GitHub does, and computes the path Flux
serves a Receiver at."""

from __future__ import annotations

import hashlib
import hmac
import json

from cluster import tree
from cluster.scenarios import receiver
from harness.model import PROJECT_ROOT


def test_the_tree_has_developments_receiver_for_both_git_sources() -> None:
    found = tree.receivers(PROJECT_ROOT, "development")
    assert [r.name for r in found] == ["git-push"]
    git_push = found[0]
    assert git_push.type == "github" and "push" in git_push.events
    assert git_push.secret == "receiver-token"
    assert set(git_push.resources) == {("GitRepository", "flux-system"), ("GitRepository", "platform")}
    assert str(git_push.file) == "clusters/development/receiver.yaml"


def test_a_push_delivery_is_signed_over_its_exact_body() -> None:
    body, headers = receiver.push_delivery("s3cret")
    assert headers["X-GitHub-Event"] == "push" and headers["Content-Type"] == "application/json"
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["X-Hub-Signature-256"] == f"sha256={expected}"
    assert json.loads(body)["ref"] == "refs/heads/main"
    other, _ = receiver.push_delivery("another")
    assert receiver.push_delivery("another")[1]["X-Hub-Signature-256"] != headers["X-Hub-Signature-256"]
    assert other == body  # the same body: only the key differs


def test_the_webhook_path_is_a_digest_of_token_name_and_namespace() -> None:
    path = receiver.webhook_path("token", "git-push", "flux-system")
    assert path == "/hook/" + hashlib.sha256(b"tokengit-pushflux-system").hexdigest()
    assert receiver.webhook_path("token", "git-push", "other") != path
