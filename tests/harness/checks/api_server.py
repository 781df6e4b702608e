"""Check: a real API server accepts every object each cluster's Flux applies,
in the order Flux applies it.

For every cluster, the plan (``harness.apply_order``) is sent to the run's
own etcd and kube-apiserver (``harness.apiserver``) with server-side apply,
as kustomize-controller sends it: Namespaces, CRDs and admission policies
for real, everything else as a dry run (``dryRun=All``), each object after
everything the order puts before it. What the API server says is the
finding: schema and format errors, CEL rules of CRDs
(``x-kubernetes-validations``) and of ValidatingAdmissionPolicies, immutable
fields, a kind no CRD serves yet at that point, a namespace that does not
exist yet, and every warning (an unknown field the server would drop, a pod
template the namespace's Pod Security refuses). Each is reported at the tree
file line of the object or of the field, with the API server's own message
and what to do; the report names the page line that shows it.

Clusters are isolated from each other: before a cluster's plan the server is
reset to empty (everything a plan created is deleted, the namespaces
finalised by hand, since no controller runs), keeping only Flux's own CRDs
and namespace when the cluster's bootstrap applies them unchanged; one
cluster at a time holds the server.

The answers are kept in ``.tools/cache/apiserver/``, named by the binaries and
every byte sent: an unchanged cluster is answered without a server, so a run
whose clusters are all unchanged starts none (``apiserver.predicted_needed``).
Before any object is sent, the plan says what bootstrap itself would fail
on (``flux_bootstrap``: a flux-system directory that does not list the
components, or does not build with them); that is reported at the tree line
to fix, with or without a server. Without kube-apiserver and etcd built, the
rest of the check is skipped with the command that builds them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness import apiserver, apply_order, build_cache, coverage
from harness.apply_order import BOOTSTRAP, Item, Plan, Step
from harness.checks import flux_render
from harness.model import Context, Finding, Origin, Outcome

CHECK = "api-server"
FIELD_MANAGER = "kustomize-controller"
CACHE_TOOL = apiserver.CACHE_TOOL
PREEXISTING_NAMESPACES = {"default", "kube-system", "kube-public", "kube-node-lease"}
STATE_FILE = "state.json"  # in the server's folder: what the plans created for real
WAIT = 30.0


# -- talking to the server ------------------------------------------------------------


class Resources:
    """Which kinds the server serves, and under which resource name."""

    def __init__(self, conn: apiserver.Connection) -> None:
        self.conn = conn
        self.known: dict[tuple[str, str, str], tuple[str, bool]] = {}
        self.served_groups: dict[str, list[str]] = {}
        # Kinds of CRDs kept from an earlier cluster, not yet applied by this
        # one: not served as far as this cluster is concerned.
        self.hidden: set[tuple[str, str, str]] = set()
        self.refresh()

    def refresh(self) -> None:
        self.known.clear()
        self.served_groups.clear()
        self.hidden.clear()
        crds = self.conn.request("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions").body
        for crd in crds.get("items") or []:
            spec = crd.get("spec") or {}
            for version in spec.get("versions") or []:
                self.hidden.add((spec.get("group"), version.get("name"), (spec.get("names") or {}).get("kind")))
        paths = ["/api/v1"]
        groups = self.conn.request("GET", "/apis").body.get("groups") or []
        for group in groups:
            versions = [v["groupVersion"] for v in group.get("versions") or []]
            self.served_groups[group["name"]] = versions
            paths += [f"/apis/{gv}" for gv in versions]
        self.served_groups[""] = ["v1"]
        for path in paths:
            reply = self.conn.request("GET", path)
            group_version = path.removeprefix("/api/").removeprefix("/apis/")
            group, _, version = group_version.rpartition("/")
            for resource in reply.body.get("resources") or []:
                if "/" in resource.get("name", ""):
                    continue
                self.known[(group, version, resource["kind"])] = (resource["name"], bool(resource.get("namespaced")))

    def lookup(self, data: dict) -> tuple[str, bool] | None:
        group, _, version = str(data.get("apiVersion", "")).rpartition("/")
        key = (group, version, str(data.get("kind")))
        return None if key in self.hidden else self.known.get(key)

    def groups(self, group: str) -> list[str]:
        return sorted(gv for gv in self.served_groups.get(group, [])
                      if (group, gv.rpartition("/")[2]) not in {(g, v) for g, v, _ in self.hidden})

    def add_crd(self, crd: dict) -> None:
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        for version in spec.get("versions") or []:
            if version.get("served"):
                key = (spec.get("group"), version.get("name"), names.get("kind"))
                self.known[key] = (names.get("plural"), spec.get("scope") == "Namespaced")
                self.hidden.discard(key)
                self.served_groups.setdefault(spec.get("group"), []).append(f"{spec.get('group')}/{version.get('name')}")

    def path(self, data: dict, resource: str, namespaced: bool, namespace: str | None) -> str:
        group, _, version = str(data.get("apiVersion", "")).rpartition("/")
        base = f"/api/{version}" if not group else f"/apis/{group}/{version}"
        name = str((data.get("metadata") or {}).get("name"))
        if namespaced:
            return f"{base}/namespaces/{namespace or 'default'}/{resource}/{name}"
        return f"{base}/{resource}/{name}"


def _apply(conn: apiserver.Connection, path: str, body: dict, real: bool) -> apiserver.Response:
    query = f"?fieldManager={FIELD_MANAGER}&force=true&fieldValidation=Warn" + ("" if real else "&dryRun=All")
    return conn.request("PATCH", path + query, body, content_type="application/apply-patch+yaml")


def _answer(reply: apiserver.Response, **extra) -> dict:
    body = reply.body
    details = body.get("details") or {}
    answer = {"status": reply.status, "warnings": reply.warnings, **extra}
    if reply.status >= 300:
        answer.update(reason=body.get("reason", ""), message=body.get("message", ""),
                      details_kind=details.get("kind", ""), details_name=details.get("name", ""),
                      causes=[{"field": c.get("field", ""), "message": c.get("message", "")}
                              for c in details.get("causes") or []])
    return answer


def _wait_established(conn: apiserver.Connection, name: str) -> str | None:
    """None once the CRD is Established, else why not."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        reply = conn.request("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
        for condition in (reply.body.get("status") or {}).get("conditions") or []:
            if condition.get("type") == "Established" and condition.get("status") == "True":
                return None
            if condition.get("type") == "NamesAccepted" and condition.get("status") == "False":
                return f"its names are not accepted: {condition.get('message')}"
        time.sleep(0.05)
    return f"not Established after {WAIT:.0f}s"


_MESSAGE_FIELD = re.compile(r"(?:^|: )(\.[\w-]+(?:\.[\w-]+|\[\d+\])*): ")
_KLOG = re.compile(r"^[IWEF](\d{2})(\d{2}) (\d{2}):(\d{2}):(\d{2}\.\d+)")


def _refresh_times(log: str, offset: int) -> list[float]:
    """When the API server recompiled its admission policies, from its log."""
    times = []
    with open(log, "rb") as handle:
        handle.seek(offset)
        text = handle.read().decode("utf-8", "replace")
    year = time.localtime().tm_year
    for line in text.splitlines():
        if "refreshing policies" not in line:
            continue
        match = _KLOG.match(line)
        if match:
            month, day, hour, minute, second = match.groups()
            stamp = time.mktime((year, int(month), int(day), int(hour), int(minute), 0, 0, 0, -1))
            times.append(stamp + float(second))
    return times


def _wait_policies(conn: apiserver.Connection, offset: int, written: float) -> None:
    """Until the admission plugin has recompiled its policies after the last
    write: it looks every second; the log says when it did."""
    deadline = time.monotonic() + WAIT
    started = time.monotonic()
    while time.monotonic() < deadline:
        times = _refresh_times(conn.log, offset)
        if any(t >= written + 0.05 for t in times):
            return
        if times and time.monotonic() - started > 1.5:  # the one refresh came right after the write, and no other is due
            return
        time.sleep(0.05)


# -- the server's state between clusters ----------------------------------------------------


def _load_state(folder: Path) -> list[dict]:
    try:
        return json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []


def _save_state(folder: Path, state: list[dict]) -> None:
    (folder / STATE_FILE).write_text(json.dumps(state), encoding="utf-8")


def _digest(data: dict) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def _delete(conn: apiserver.Connection, entry: dict) -> None:
    reply = conn.request("DELETE", entry["path"])
    if reply.status == 404:
        return
    meta = reply.body.get("metadata") or {}
    if meta.get("finalizers"):  # no controller runs here to remove them
        conn.request("PATCH", entry["path"], {"metadata": {"finalizers": None}},
                     content_type="application/merge-patch+json")


def _reset(conn: apiserver.Connection, folder: Path, keep: dict[str, str]) -> list[dict]:
    """Delete what earlier plans created for real, except the objects in
    ``keep`` (path -> digest) that are there unchanged; returns what stays.
    Namespaced objects go first, then CRDs and cluster-wide objects, then
    the namespaces, which are finalised here (the namespace controller that
    would do it does not run); each group at once."""
    state = _load_state(folder)
    stays = [e for e in state if keep.get(e["path"]) == e["digest"]]
    going = [e for e in state if e not in stays]

    def delete_namespace(entry: dict) -> None:
        if conn.request("DELETE", entry["path"]).status < 300:
            body = conn.request("GET", entry["path"]).body
            if body.get("kind") == "Namespace":
                body.setdefault("spec", {})["finalizers"] = []
                conn.request("PUT", entry["path"] + "/finalize", body)

    with ThreadPoolExecutor(max_workers=4) as pool:
        for group in (("namespaced",), ("crd", "cluster"), ("namespace",)):
            entries = [e for e in going if e["what"] in group]
            action = delete_namespace if group == ("namespace",) else (lambda e: _delete(conn, e))
            list(pool.map(action, entries))
    deadline = time.monotonic() + WAIT
    left = list(going)
    while left and time.monotonic() < deadline:
        left = [e for e in left if conn.request("GET", e["path"]).status != 404]
        if left:
            time.sleep(0.05)
    return stays


# -- running a plan ----------------------------------------------------------------------------


class Session:
    """One cluster's plan on the server: what it creates, and the answers."""

    def __init__(self, conn: apiserver.Connection, folder: Path, state: list[dict]) -> None:
        self.conn = conn
        self.folder = folder
        self.state = state
        self.resources = Resources(conn)

    def record(self, item_data: dict, path: str, namespaced: bool) -> None:
        what = "crd" if item_data.get("kind") == "CustomResourceDefinition" else \
            "namespace" if item_data.get("kind") == "Namespace" and not namespaced else \
            "namespaced" if namespaced else "cluster"
        self.state = [e for e in self.state if e["path"] != path]
        self.state.append({"path": path, "what": what, "digest": _digest(item_data)})
        _save_state(self.folder, self.state)

    def send(self, data: dict, real: bool) -> dict:
        mapping = self.resources.lookup(data)
        if mapping is None:
            group, _, _ = str(data.get("apiVersion", "")).rpartition("/")
            return {"status": 0, "served": False, "warnings": [],
                    "versions": self.resources.groups(group)}
        resource, namespaced = mapping
        namespace = (data.get("metadata") or {}).get("namespace") or ("default" if namespaced else None)
        path = self.resources.path(data, resource, namespaced, namespace)
        reply = _apply(self.conn, path, data, real)
        if reply.status == 404 and reply.body.get("details", {}).get("kind") not in ("namespaces",):
            time.sleep(0.2)  # a CRD just Established may take a moment to serve
            reply = _apply(self.conn, path, data, real)
        if real and reply.status < 300:
            self.record(data, path, namespaced)
        return _answer(reply, namespaced=namespaced)

    def send_crds(self, crds: list[dict]) -> list[dict]:
        kept = {e["path"]: e for e in self.state if e["what"] == "crd"}

        def send(crd: dict) -> dict:
            entry = kept.get(_crd_path(crd))
            if entry is not None and entry["digest"] == _digest(crd) and entry.get("answer"):
                return entry["answer"]  # this very CRD, kept from the cluster before: its answer then
            return self.send(crd, True)

        with ThreadPoolExecutor(max_workers=4) as pool:
            answers = list(pool.map(send, crds))
        for crd, answer in zip(crds, answers):
            entry = kept.get(_crd_path(crd))
            if entry is not None and entry.get("answer") is answer:
                self.resources.add_crd(crd)
            elif answer["status"] and answer["status"] < 300:
                why = _wait_established(self.conn, str((crd.get("metadata") or {}).get("name")))
                if why is not None:
                    answer.update(status=422, reason="NotEstablished", message=f"the CRD is {why}", causes=[])
                else:
                    self.resources.add_crd(crd)
                    for entry in self.state:
                        if entry["path"] == _crd_path(crd):
                            entry["answer"] = answer
                    _save_state(self.folder, self.state)
        return answers

    def run(self, plan: Plan) -> list[dict]:
        answers: list[dict] = []
        for step in plan.steps:
            items = apply_order.sorted_items(step)
            stage_one = [i for i in items if i.stage == 1]
            crds = [i.data for i in stage_one if i.kind == "CustomResourceDefinition"]
            crd_answers = iter(self.send_crds(crds))
            for item in stage_one:
                answers.append(next(crd_answers) if item.kind == "CustomResourceDefinition"
                               else self.send(item.data, True))
            policies = [i for i in items if i.stage == 2]
            if policies:
                offset = os.path.getsize(self.conn.log)
                answers.extend(self.send(i.data, True) for i in policies)
                _wait_policies(self.conn, offset, time.time())
            answers.extend(self.send(i.data, i.real) for i in items if i.stage == 3)
            for chart in step.charts:
                if chart.waited:
                    answers.extend(self.send_crds(chart.crds))
        return answers


def answers_for(root: Path, plan: Plan) -> list[dict]:
    """The server's answer to every operation of ``plan``, from the cache or
    from the run's server."""
    binary, parts = apiserver.binary_parts(root)
    name = build_cache.key(CACHE_TOOL, binary, [*parts, ("plan", apply_order.canonical(plan.operations()))])
    cached = build_cache.get(CACHE_TOOL, name)
    if cached is not None:
        return cached["answers"]
    folder = apiserver.shared_folder(root)
    conn = apiserver.connect(folder)
    (folder / "used").touch()
    try:
        with apiserver.exclusive(folder):
            keep = {_crd_path(crd): _digest(crd) for crd in _crds(plan)}
            state = _reset(conn, folder, keep)
            _save_state(folder, state)
            answers = Session(conn, folder, state).run(plan)
    finally:
        conn.close()
    build_cache.put(CACHE_TOOL, name, {"answers": answers})
    return answers


def _crds(plan: Plan) -> list[dict]:
    """Every CRD the plan creates: kept between clusters when unchanged
    (creating and deleting a CRD costs the server seconds), and hidden
    until the plan applies it (``Resources.hidden``)."""
    out = []
    for step in plan.steps:
        out += [item.data for item in step.items if item.kind == "CustomResourceDefinition" and item.real]
        out += [crd for chart in step.charts if chart.waited for crd in chart.crds]
    return out


def _crd_path(crd: dict) -> str:
    return f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{(crd.get('metadata') or {}).get('name')}"


# -- findings ---------------------------------------------------------------------------------


def _field_path(text: str) -> list:
    """``spec.containers[0].image`` -> ["spec", "containers", 0, "image"]."""
    path: list = []
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", text.lstrip(".")):
        path.append(int(part[1:-1]) if part.startswith("[") else part)
    return path


def _located(item: Item, field: str) -> Origin:
    return item.field(_field_path(field)) if field else item.origin


class Reporter:
    """Turns a plan and the server's answers into findings."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.findings: list[Finding] = []
        # what creates each namespace and each served kind, step by step
        self.namespaces: dict[str, tuple[str, Item]] = {}
        self.kinds: dict[tuple[str, str], tuple[str, Item | None, str]] = {}
        for step in plan.steps:
            for item in step.items:
                if item.kind == "Namespace" and item.group == "":
                    self.namespaces.setdefault(item.name, (step.name, item))
                if item.kind == "CustomResourceDefinition":
                    self._add_kinds(item.data, step.name, item, "")
            for chart in step.charts:
                for crd in chart.crds:
                    self._add_kinds(crd, step.name, chart.release,
                                    "" if chart.waited else f"without waiting for HelmRelease {chart.release.name}")

    def _add_kinds(self, crd: dict, step: str, item: Item | None, how: str) -> None:
        spec = crd.get("spec") or {}
        for version in spec.get("versions") or []:
            key = (f"{spec.get('group')}/{version.get('name')}", str((spec.get("names") or {}).get("kind")))
            self.kinds.setdefault(key, (step, item, how))

    def fail(self, where: Origin, message: str) -> None:
        self.findings.append(Finding(CHECK, Outcome.FAILED, where, f"{self.plan.cluster}: {message}"))

    def _by(self, step: Step) -> str:
        if step.name == BOOTSTRAP:
            return "bootstrap"
        where = f" ({step.kustomization.origin})" if step.kustomization else ""
        return f"Kustomization {step.name}{where}"

    def report(self, answers: list[dict]) -> list[Finding]:
        answers_iter = iter(answers)
        policies = {item.name: item for step in self.plan.steps for item in step.items
                    if item.kind == "ValidatingAdmissionPolicy"}
        for step in self.plan.steps:
            for item in apply_order.sorted_items(step):
                answer = next(answers_iter, None)
                if answer is not None:
                    self.item(step, item, answer, policies)
            for chart in step.charts:
                if chart.skipped:
                    continue
                if chart.waited:
                    for crd in chart.crds:
                        answer = next(answers_iter, None)
                        if answer is not None and not (0 < answer["status"] < 300):
                            self.fail(chart.release.origin, f"the CRD {crd['metadata']['name']} of the chart of "
                                      f"HelmRelease {chart.release.name} ({chart.source}) is rejected: "
                                      f"{answer.get('message')}")
        return self.findings

    def item(self, step: Step, item: Item, answer: dict, policies: dict[str, Item]) -> None:
        what = f"{item.describe()} ({item.data.get('apiVersion')}), applied by {self._by(step)}"
        where = item.origin
        note = f" ({item.note})" if item.note else ""
        if not answer.get("served", True):
            self.fail(where, f"{what}{note}: the API server serves no {item.kind} in {item.data.get('apiVersion')} at "
                             f"this point of the order. {self._missing_kind(step, item, answer)}")
            return
        status = answer["status"]
        if status >= 300:
            self.fail(self._where(item, answer), f"{what}{note}: {self._rejection(step, item, answer, policies)}")
            return
        for warning in answer.get("warnings") or []:
            self.fail(self._warning_where(item, warning), f"{what}{note}: the API server warns: {warning}; "
                      + self._warning_advice(warning))
        self._order_guard(step, item, answer)

    def _where(self, item: Item, answer: dict) -> Origin:
        for cause in answer.get("causes") or []:
            if cause.get("field"):
                return _located(item, cause["field"])
        # Server-side apply names the field in its message: ".spec.replicas: expected ..."
        match = _MESSAGE_FIELD.search(answer.get("message") or "")
        return _located(item, match.group(1)) if match else item.origin

    def _warning_where(self, item: Item, warning: str) -> Origin:
        match = re.search(r'unknown field "([^"]+)"', warning)
        return _located(item, match.group(1)) if match else item.origin

    @staticmethod
    def _warning_advice(warning: str) -> str:
        if "unknown field" in warning:
            return "Flux applies the object without that field; fix its name or indentation (the CRD's or the kind's schema)"
        if "PodSecurity" in warning:
            return ("the namespace's Pod Security refuses the pods this creates: set the restricted settings "
                    "(runAsNonRoot, allowPrivilegeEscalation: false, capabilities drop ALL, seccompProfile RuntimeDefault)")
        return "change the object so the API server has nothing to warn about"

    def _rejection(self, step: Step, item: Item, answer: dict, policies: dict[str, Item]) -> str:
        message = answer.get("message") or answer.get("reason") or f"HTTP {answer['status']}"
        if answer["status"] == 404 and answer.get("details_kind") == "namespaces":
            namespace = answer.get("details_name") or item.namespace or "default"
            return (f"namespace {namespace} does not exist at this point of the order "
                    f"(the API server: {message}). {self._missing_namespace(step, namespace)}")
        policy = re.search(r"ValidatingAdmissionPolicy '([^']+)'", message)
        if policy and policy.group(1) in policies:
            return (f"rejected by the admission policy (the API server: {message}); the policy is "
                    f"{policies[policy.group(1)].origin}: change the object to meet it")
        if "field is immutable" in message or "immutable" in message.lower():
            return (f"the API server refuses the update (the object exists from an earlier step): {message}; "
                    "an immutable field cannot change in place: keep it as first applied, or give the object a new name")
        if "field not declared in schema" in message:
            return (f"the API server rejects it: {message}; the kind's schema has no such field: fix its name or "
                    "indentation")
        causes = [f"{c['field']}: {c['message']}" if c.get("field") and c["field"] not in c["message"] else c["message"]
                  for c in answer.get("causes") or [] if c.get("message")]
        detail = "; ".join(causes) if causes and len(message) > 400 else message
        return f"the API server rejects it: {detail}"

    def _missing_kind(self, step: Step, item: Item, answer: dict) -> str:
        key = (str(item.data.get("apiVersion")), item.kind)
        provider = self.kinds.get(key)
        if provider is None:
            versions = answer.get("versions") or []
            if versions:
                return f"It serves {item.group} as {', '.join(versions)}: use one of those apiVersions."
            return ("No CRD of this cluster serves it: install its CRD first (a Kustomization this one depends on, "
                    "or a chart's HelmRelease it waits for), or fix the apiVersion and kind.")
        provider_step, provider_item, how = provider
        where = f" ({provider_item.origin})" if provider_item else ""
        if how:
            return (f"Its CRD comes from the chart of HelmRelease {provider_item.name if provider_item else ''}{where}, "
                    f"applied by Kustomization {provider_step} {how}: set `wait: true` (or a health check for the "
                    f"release) on {provider_step}, so that what depends on it starts once the chart is installed.")
        return (f"Its CRD comes from {self._step_label(provider_step)}{where}, later in the order: "
                f"add `dependsOn: [{{name: {provider_step.split('/')[-1]}}}]` to Kustomization {step.name}.")

    def _missing_namespace(self, step: Step, namespace: str) -> str:
        provider = self.namespaces.get(namespace)
        if provider is None:
            return ("No Kustomization of this cluster creates it: add the Namespace to the tree "
                    "(the platform's namespaces are in platform/baseline/namespaces.yaml), or fix the namespace.")
        provider_step, provider_item = provider
        return (f"It is created by {self._step_label(provider_step)} ({provider_item.origin}), later in the order: "
                f"add `dependsOn: [{{name: {provider_step.split('/')[-1]}}}]` to Kustomization {step.name}.")

    def _step_label(self, name: str) -> str:
        return "bootstrap" if name == BOOTSTRAP else f"Kustomization {name}"

    def _order_guard(self, step: Step, item: Item, answer: dict) -> None:
        """Accepted, but only because the plan's linear order ran another
        Kustomization first that nothing makes come first."""
        before, depends = self.plan.guaranteed(step.name)
        if answer.get("namespaced") and item.kind != "Namespace":
            namespace = item.namespace or "default"
            provider = self.namespaces.get(namespace)
            if namespace not in PREEXISTING_NAMESPACES and provider and provider[0] not in before:
                self.fail(item.origin, f"{item.describe()}, applied by {self._by(step)}: its namespace {namespace} "
                          f"is created by {self._step_label(provider[0])} ({provider[1].origin}), which "
                          f"{step.name} neither depends on nor is applied by: Flux may apply {step.name} first, and "
                          f"the API server then rejects it; add `dependsOn: [{{name: {provider[0].split('/')[-1]}}}]` "
                          f"to Kustomization {step.name}")
        provider = self.kinds.get((str(item.data.get("apiVersion")), item.kind))
        if provider is not None:
            provider_step, provider_item, how = provider
            from_chart = provider_item is not None and provider_item.kind == "HelmRelease"
            ok = provider_step in depends if from_chart else provider_step in before
            if not ok and not how:
                self.fail(item.origin, f"{item.describe()}, applied by {self._by(step)}: the CRD that serves "
                          f"{item.kind} comes from {self._step_label(provider_step)}"
                          f"{' (' + str(provider_item.origin) + ')' if provider_item else ''}, which {step.name} does "
                          f"not depend on: Flux may apply {step.name} first, and the API server then rejects it; add "
                          f"`dependsOn: [{{name: {provider_step.split('/')[-1]}}}]` to Kustomization {step.name}")


# -- the check ----------------------------------------------------------------------------------


def _plan_findings(plan: Plan) -> list[Finding]:
    """What the plan itself says, before any server answers: bootstrap
    failures, and what it cannot plan (with why)."""
    findings = [Finding(CHECK, Outcome.FAILED, where, f"{plan.cluster}: {message}") for where, message in plan.failures]
    findings += [Finding(CHECK, Outcome.SKIPPED, where, why) for where, why in plan.skipped]
    for step in plan.steps:
        for chart in step.charts:
            if chart.skipped:
                findings.append(Finding(CHECK, Outcome.SKIPPED, chart.release.origin,
                                        f"HelmRelease {chart.release.name}: the CRDs of {chart.source} are not "
                                        f"installed, since they are not known: {chart.skipped}"))
    return findings


def check_cluster(root: Path, render: flux_render.ClusterRender) -> list[Finding]:
    plan = apply_order.plan(root, render)
    findings = _plan_findings(plan)
    if not plan.steps:
        return findings
    answers = answers_for(root, plan)
    reported = Reporter(plan).report(answers)
    findings += reported
    if not reported:
        count = len(answers)
        findings.append(Finding(CHECK, Outcome.PASSED, Origin(f"{render.cluster}/flux-system", 1),
                                f"{render.cluster}: the API server accepts all {count} objects, in the order of "
                                f"{len(plan.steps)} steps",
                                covers=coverage.covers_of(obj.source_file for obj in render.objects)))
    return findings


def run(ctx: Context) -> list[Finding]:
    root = Path(ctx.root).resolve()
    missing = apiserver.missing_reason(root)
    renders = flux_render.render_all(root)
    findings: list[Finding] = []
    for render in renders.values():
        if missing is not None:
            # No server to ask; what bootstrap would fail on is known without one.
            plan = apply_order.plan(root, render)
            findings += [f for f in _plan_findings(plan) if f.outcome is Outcome.FAILED]
            findings.append(Finding(CHECK, Outcome.SKIPPED, Origin(f"{render.cluster}/flux-system", 1), missing))
            continue
        try:
            findings += check_cluster(root, render)
        except apiserver.Unavailable as error:
            findings.append(Finding(CHECK, Outcome.FAILED, Origin(f"{render.cluster}/flux-system", 1),
                                    f"{render.cluster}: {error}"))
    return findings
