"""What only real pods can prove (the kind provider): the application
answers, over its Service, with the message the tree gives it, over the TLS
certificate cert-manager issued; a platform release replaces running pods;
the sandbox clean-down deletes real workloads, down to their containers.

The release check runs on every provider (kwok's pods are replaced by the
real ReplicaSet controller too, but run nothing); the other two need pods
that run, and say so when asked of a provider without them.
"""

from __future__ import annotations

import json
import time

from .. import status
from ..plan import Step
from ..providers import Cluster, kube_args
from . import READY_BOUND, RECONCILE_BOUND

NAMESPACE = "podinfo"
SERVICE_URL = "https://podinfo.podinfo.svc:9899/"  # the chart's TLS port, a name the certificate holds
SECRET = "podinfo-tls"
CLIENT = "gwp-client"
RELEASE_ANNOTATION = "gitops-whitepaper.example.org/platform-release"
CERT_MANAGER = ("cert-manager", "app.kubernetes.io/component=controller")
CLIENT_BOUND = 300


def client_image(env) -> str:
    """The tier's client image (curl), from the kind-images build's record."""
    from toolchain import cache, pins

    record = cache.record(pins.tools(env.root)["kind-images"]) or {}
    found = [name for name in record.get("images", []) if name.startswith("gwp.local/tier-client:")]
    if not found:
        raise LookupError("the kind-images build has no tier-client image: run `nox -s tools -- --tier kind`")
    return found[0]


# The client verifies podinfo's certificate against the CA in the Secret
# cert-manager wrote, and the host name against the Service's name (the
# certificate's dnsNames), with openssl: curl refuses the self-signed
# certificate cert-manager issues without a subject ("couldn't get
# X509-issuer name") although the chain and the name verify.
CLIENT_SCRIPT = """for try in $(seq 1 40); do
  if out=$(printf 'GET / HTTP/1.0\\r\\nHost: {host}\\r\\n\\r\\n' | openssl s_client -quiet -connect {host}:{port} \\
      -servername {host} -verify_hostname {host} -CAfile /tls/ca.crt -verify_return_error 2>&1); then
    case "$out" in *"HTTP/1.0 200"*) printf '%s\\n' "$out"; exit 0;; esac
  fi
  sleep 3
done
printf '%s\\n' "$out"
exit 1
"""
HOST, PORT = "podinfo.podinfo.svc", 9899


def client_pod(image: str) -> str:
    """A pod in podinfo's namespace (its policies admit it: same namespace),
    restricted like every pod there, that calls podinfo's Service over TLS
    and trusts only the CA of the Secret cert-manager wrote."""
    return json.dumps({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": CLIENT, "namespace": NAMESPACE},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "client", "image": image, "imagePullPolicy": "Never",
                "command": ["sh", "-c", CLIENT_SCRIPT.format(host=HOST, port=PORT)],
                "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]}},
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                "volumeMounts": [{"name": "tls", "mountPath": "/tls", "readOnly": True}],
            }],
            "volumes": [{"name": "tls", "secret": {"secretName": SECRET, "items": [{"key": "ca.crt", "path": "ca.crt"}]}}],
        },
    })


def answer_of(log: str) -> dict:
    """The JSON body of the HTTP answer the client printed (after the
    verification lines of openssl and the headers)."""
    if "verify return:1" not in log or "HTTP/1.0 200" not in log:
        raise AssertionError(f"no verified HTTP 200 answer in the client's output:\n{log[-1500:]}")
    return json.loads(log[log.index("{", log.index("HTTP/1.0 200")):])


def kubectl(env, cluster: Cluster, *args: str, note: str = "", stdin: str | None = None, check: bool = True,
            timeout: float = 120):
    return env.runner.run(Step([env.tool("kubectl"), *kube_args(cluster), *args], note=note, stdin=stdin,
                               context=cluster.context, kubeconfig=cluster.kubeconfig, timeout=timeout), check=check)


def podinfo_over_tls(env, target: str) -> str:
    """podinfo answers over its Service and TLS with ``podinfo on <target>``;
    returns what it answered."""
    cluster = env.cluster(target)
    status.wait_all_ready(env, cluster, READY_BOUND)
    kubectl(env, cluster, "get", "validatingwebhookconfiguration", "cert-manager-webhook", "-o", "name",
            note=f"{target}: cert-manager's webhook is registered (admission webhooks are on)")
    kubectl(env, cluster, "-n", NAMESPACE, "wait", "--for=condition=Ready", "certificate/podinfo", "--timeout=300s",
            note=f"{target}: cert-manager issued podinfo's certificate", timeout=330)
    secret = kubectl(env, cluster, "-n", NAMESPACE, "get", "secret", SECRET, "-o", "json",
                     note=f"{target}: the Secret cert-manager wrote")
    if env.live:
        data = json.loads(secret.stdout)
        issued_by = data["metadata"].get("annotations", {}).get("cert-manager.io/certificate-name")
        assert issued_by == "podinfo" and data.get("data", {}).get("ca.crt"), (
            f"{target}: Secret {NAMESPACE}/{SECRET} was not written by cert-manager for Certificate podinfo "
            f"(annotation {issued_by!r}); see `kubectl -n {NAMESPACE} describe certificate podinfo`")
    kubectl(env, cluster, "-n", NAMESPACE, "delete", "pod", CLIENT, "--ignore-not-found", "--wait=true",
            note="no client left from an earlier try")
    image = client_image(env) if env.live else "gwp.local/tier-client:$KEY"
    kubectl(env, cluster, "apply", "-f", "-", stdin=client_pod(image),
            note=f"{target}: a client pod calls {SERVICE_URL} trusting only the CA in Secret {SECRET}")
    try:
        done = kubectl(env, cluster, "-n", NAMESPACE, "wait", "--for=jsonpath={.status.phase}=Succeeded",
                       f"pod/{CLIENT}", f"--timeout={CLIENT_BOUND}s", check=False, timeout=CLIENT_BOUND + 30)
        logs = kubectl(env, cluster, "-n", NAMESPACE, "logs", CLIENT, check=False, note="what podinfo answered")
    finally:
        kubectl(env, cluster, "-n", NAMESPACE, "delete", "pod", CLIENT, "--ignore-not-found", "--wait=false",
                check=False)
    if not env.live:
        return ""
    assert done.returncode == 0, (f"{target}: the client pod did not get an answer from {SERVICE_URL} within "
                                  f"{CLIENT_BOUND}s:\n{(logs.stdout + logs.stderr)[-1500:]}")
    answer = answer_of(logs.stdout)
    want = f"podinfo on {target}"
    assert answer.get("message") == want, (
        f"{target}: podinfo answered {answer.get('message')!r}, not {want!r} (apps/base/podinfo/release.yaml "
        f"ui.message, substituted with cluster_name); whole answer: {logs.stdout[:500]}")
    return answer["message"]


# -- a release replaces running pods --------------------------------------------------


def annotate_release(clone, version: str) -> None:
    """The change a release carries to its pods: cert-manager's controller
    pods are annotated with the release, so the release must replace them."""
    path = clone / "platform" / "controllers" / "cert-manager.yaml"
    text = path.read_text(encoding="utf-8")
    marker = "\n  values:\n"
    if marker not in text:
        raise AssertionError("platform/controllers/cert-manager.yaml has no `values:` for the release's pod change")
    path.write_text(text.replace(marker, f'{marker}    podAnnotations:\n      {RELEASE_ANNOTATION}: "{version}"\n', 1),
                    encoding="utf-8")


def pods(env, cluster: Cluster, namespace: str, selector: str) -> dict[str, dict]:
    """name -> {annotation, ready} of the pods ``selector`` selects."""
    got = kubectl(env, cluster, "-n", namespace, "get", "pods", "-l", selector, "-o", "json")
    if not env.live:
        return {}
    out = {}
    for item in json.loads(got.stdout).get("items", []):
        meta = item["metadata"]
        if meta.get("deletionTimestamp"):
            continue
        ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                    for c in item.get("status", {}).get("conditions", []))
        out[meta["name"]] = {"release": (meta.get("annotations") or {}).get(RELEASE_ANNOTATION), "ready": ready}
    return out


def wait_replaced(env, cluster: Cluster, before: dict[str, dict], release: str | None,
                  bound: float = RECONCILE_BOUND) -> None:
    """Until none of the ``before`` pods is left and every pod carries
    ``release`` (None: no annotation) and is Ready."""
    namespace, selector = CERT_MANAGER
    if not env.live:
        pods(env, cluster, namespace, selector)
        return
    deadline = time.monotonic() + bound
    now: dict = {}
    while time.monotonic() < deadline:
        now = pods(env, cluster, namespace, selector)
        if now and not set(now) & set(before) and all(p["release"] == release and p["ready"] for p in now.values()):
            return
        time.sleep(3)
    raise AssertionError(f"{cluster.target}: cert-manager's controller pods were not replaced by release "
                         f"{release or '(unannotated)'} within {bound:.0f}s: before {sorted(before)}, now {now}")


def unchanged(env, cluster: Cluster, before: dict[str, dict]) -> None:
    """The pods ``before`` still run, untouched (a release the cluster does not take)."""
    if not env.live:
        return
    now = pods(env, cluster, *CERT_MANAGER)
    assert set(now) == set(before), (f"{cluster.target}: cert-manager's controller pods changed although the "
                                     f"cluster did not take the release: before {sorted(before)}, now {sorted(now)}")


# -- the clean-down deletes real workloads -------------------------------------------


KEPT_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease", "local-path-storage", "flux-system", "default")


def workload_pods(env, cluster: Cluster) -> list[str]:
    """Pods in namespaces the tree applies (anything but the cluster's own and Flux's)."""
    got = kubectl(env, cluster, "get", "pods", "--all-namespaces", "-o", "json", note="the workloads' pods")
    if not env.live:
        return []
    return [f"{i['metadata']['namespace']}/{i['metadata']['name']}" for i in json.loads(got.stdout).get("items", [])
            if i["metadata"]["namespace"] not in KEPT_NAMESPACES]


def wait_workloads_gone(env, cluster: Cluster, bound: float = RECONCILE_BOUND) -> None:
    """After the clean-down: no workload pod in the API, and (where the
    provider runs containers) none of their containers on any node."""
    if not env.live:
        workload_pods(env, cluster)
        return
    deadline = time.monotonic() + bound
    left: list[str] = []
    while time.monotonic() < deadline:
        left = workload_pods(env, cluster) + env.provider.workload_containers(cluster, KEPT_NAMESPACES)
        if not left:
            return
        time.sleep(3)
    raise AssertionError(f"{cluster.target}: the clean-down left workloads running after {bound:.0f}s: {left}")


# -- nothing leaves the machine ----------------------------------------------------------


def egress_probe(env, target: str) -> tuple[int, int]:
    """A pod tries an address off the machine; the guard must drop and count
    every packet of it (and nothing else may have been dropped). Returns
    (the probe's packets, packets dropped in all)."""
    from .. import egress

    cluster = env.cluster(target)
    guard = env.provider.guard
    image = client_image(env) if env.live else "gwp.local/tier-client:$KEY"
    pod = json.loads(client_pod(image))
    pod["metadata"] = {"name": "gwp-egress-probe", "namespace": "default"}
    pod["spec"]["volumes"] = []
    container = pod["spec"]["containers"][0]
    container["volumeMounts"] = []
    container["command"] = ["curl", "--silent", "--max-time", "8", f"http://{egress.PROBE}/"]
    env.runner.call(Step(["iptables -I DOCKER-USER 1", f"-i {egress.BRIDGE} -d {egress.PROBE}", "(count only)"],
                         note="count the probe's packets apart", in_process=True), lambda: guard.probe_rule(True))
    try:
        kubectl(env, cluster, "apply", "-f", "-", stdin=json.dumps(pod),
                note=f"{target}: a pod tries {egress.PROBE}, an address off the machine")
        kubectl(env, cluster, "-n", "default", "wait", "--for=jsonpath={.status.phase}=Failed",
                "pod/gwp-egress-probe", "--timeout=120s", check=False, timeout=150)
        probe, dropped = guard.probed() if env.live else (0, 0)
    finally:
        kubectl(env, cluster, "-n", "default", "delete", "pod", "gwp-egress-probe", "--ignore-not-found",
                "--wait=false", check=False)
        if env.live:
            guard.probe_rule(False)
    return probe, dropped
