"""Proof: the webhook Receiver of the development cluster
(``clusters/development/receiver.yaml``) turns a signed push delivery into a
reconciliation of the sources it names, and ignores a delivery it cannot
verify.

The token Secret is the one the reconciliation page's block creates (it runs
earlier, in page order, on the same cluster); where it does not exist yet,
the proof creates it the same way. The Receiver must then be Ready with the
webhook path Flux documents, ``/hook/`` + SHA-256(token + name + namespace).
A delivery shaped as GitHub sends a push (``X-GitHub-Event: push``, the body
signed with HMAC-SHA256 keyed with the token in ``X-Hub-Signature-256``)
goes to where the provider says the receiver listens: kwok's controller runs
on the host, so it is its listener there, reached directly; elsewhere the
Service ``webhook-receiver``, through ``kubectl port-forward``. The proof
checks the answers (400 for a wrong signature, 200 for the right one) and
that every source was asked to reconcile only after the signed delivery and
then did (its ``status.lastHandledReconcileAt`` is the request).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import urllib.error
import urllib.request
import uuid

from .. import status, tree
from ..plan import Step
from ..providers import kube_args
from . import doc_blocks

TARGET = "development"
REQUESTED = "reconcile.fluxcd.io/requestedAt"
KINDS = {"GitRepository": "gitrepositories.source.toolkit.fluxcd.io",
         "OCIRepository": "ocirepositories.source.toolkit.fluxcd.io"}
BOUND = 120


def webhook_path(token: str, name: str, namespace: str) -> str:
    """The path Flux serves a Receiver at (its API: GetWebhookPath)."""
    return "/hook/" + hashlib.sha256((token + name + namespace).encode()).hexdigest()


def push_delivery(token: str, branch: str = "main") -> tuple[bytes, dict[str, str]]:
    """A push delivery as GitHub sends it: JSON body, event header, and the
    body's HMAC-SHA256 keyed with ``token``."""
    body = json.dumps({"ref": f"refs/heads/{branch}", "repository": {"full_name": "example-org/gitops-whitepaper"}},
                      separators=(",", ":")).encode()
    signature = hmac.new(token.encode(), body, hashlib.sha256).hexdigest()
    return body, {"Content-Type": "application/json", "X-GitHub-Event": "push",
                  "X-GitHub-Delivery": str(uuid.uuid4()), "X-Hub-Signature-256": f"sha256={signature}"}


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    """POST straight to ``url`` (never through a proxy the environment names)."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=30) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code


KEY = "receiver"


def start_ahead(env) -> None:
    """Run the proof in the background (``Provider.proofs_ahead``) as soon
    as the page blocks are done with development, whose reconciliation page
    block makes the Receiver's token."""
    env.ahead_proof(KEY, lambda: run(env), after=(env.stage(doc_blocks.done_with(TARGET)),))


def proof(env) -> None:
    """The proof: its result if ``start_ahead`` started it, or a run now."""
    env.proof_result(KEY, lambda: run(env))


def run(env) -> None:
    cluster = env.cluster(TARGET)
    found = tree.receivers(env.root, TARGET)
    assert found, f"clusters/{TARGET}/ has no webhook Receiver (receiver.yaml); docs/design/reconciliation.md shows it"
    receiver = found[0]
    kubectl = env.tool("kubectl")
    where = f"{receiver.where()} (Receiver {receiver.namespace}/{receiver.name})"

    secret = env.runner.run(Step([kubectl, *kube_args(cluster), "-n", receiver.namespace, "get", "secret",
                                  receiver.secret, "-o", "jsonpath={.data.token}"],
                                 note=f"{TARGET}: the Receiver's token (the reconciliation page's block made it)",
                                 timeout=60), check=False)
    if env.live and secret.returncode == 0 and secret.stdout.strip():
        token = base64.b64decode(secret.stdout.strip()).decode()
    else:
        token = secrets.token_hex(32) if env.live else "$TOKEN"
        env.runner.run(Step([kubectl, *kube_args(cluster), "-n", receiver.namespace, "create", "secret", "generic",
                             receiver.secret, f"--from-literal=token={token}"],
                            note=f"{TARGET}: the Receiver's token, made as the reconciliation page makes it",
                            context=cluster.context, kubeconfig=cluster.kubeconfig, timeout=60))
    env.runner.run(Step([kubectl, *kube_args(cluster), "-n", receiver.namespace, "wait",
                         f"receivers.notification.toolkit.fluxcd.io/{receiver.name}", "--for=condition=Ready",
                         f"--timeout={BOUND}s"], note=f"{TARGET}: the Receiver is Ready once its Secret exists",
                        timeout=BOUND + 30))
    got = status.get_json(cluster, env.runner, kubectl, f"receivers.notification.toolkit.fluxcd.io/{receiver.name}",
                          "-n", receiver.namespace)
    path = webhook_path(token, receiver.name, receiver.namespace) if env.live else "/hook/$DIGEST"
    if env.live:
        served = got.get("status", {}).get("webhookPath")
        assert served == path, f"{where}: serves {served}, not /hook/ + SHA-256(token + name + namespace) = {path}"

    with env.provider.receiver_url(cluster, env.runner) as base:
        env.runner.call(Step(["POST", f"{base}{path}", "X-GitHub-Event: push",
                              "X-Hub-Signature-256: sha256=HMAC(body, another key), then HMAC(body, token)"],
                             note=f"{TARGET}: a delivery signed with another key, then one signed with the token",
                             in_process=True), lambda: None)
        if not env.live:
            return
        before = requested(env, cluster, receiver)
        body, headers = push_delivery(secrets.token_hex(32))
        refused = post(f"{base}{path}", body, headers)
        assert refused == 400, f"{where}: a delivery signed with another key was answered {refused}, not 400"
        time.sleep(status.POLL)
        assert requested(env, cluster, receiver) == before, (
            f"{where}: a delivery signed with another key asked a source to reconcile")
        body, headers = push_delivery(token)
        accepted = post(f"{base}{path}", body, headers)
        assert accepted == 200, f"{where}: the signed push delivery was answered {accepted}, not 200"
        wait_handled(env, cluster, receiver, before, where)


def requested(env, cluster, receiver) -> dict[tuple[str, str], tuple[str, str]]:
    """(kind, name) -> (requestedAt annotation, lastHandledReconcileAt) of
    every source the Receiver names."""
    out = {}
    for kind, name in receiver.resources:
        got = status.get_json(cluster, env.runner, env.tool("kubectl"), f"{KINDS[kind]}/{name}", "-n",
                              receiver.namespace)
        out[(kind, name)] = ((got.get("metadata", {}).get("annotations") or {}).get(REQUESTED, ""),
                             got.get("status", {}).get("lastHandledReconcileAt", ""))
    return out


def wait_handled(env, cluster, receiver, before, where: str) -> None:
    """Until every source carries a new request and its controller handled it."""
    deadline = time.monotonic() + BOUND
    now = before
    while time.monotonic() < deadline:
        now = requested(env, cluster, receiver)
        if all(asked and asked != before[key][0] and handled == asked for key, (asked, handled) in now.items()):
            return
        time.sleep(status.POLL)
    late = [f"{kind}/{name}: requestedAt {asked or 'none'} (was {before[(kind, name)][0] or 'none'}), "
            f"lastHandledReconcileAt {handled or 'none'}" for (kind, name), (asked, handled) in now.items()]
    raise AssertionError(f"{where}: within {BOUND}s of the signed delivery not every source was asked to "
                         "reconcile and did:\n  " + "\n  ".join(late))
