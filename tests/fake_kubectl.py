"""A stand-in for kubectl that answers the calls snippets/sandbox-clean-down.sh
makes from a cluster described in a JSON file, and changes that description
as the real cluster would change.

Run as ``fake_kubectl.py ARGS...`` with FAKE_CLUSTER naming the JSON file and
FAKE_CALLS a file every call is appended to (one line, arguments joined by
spaces). The cluster::

    {"current_context": "...", "context": "...",
     "kustomizations": [<Kustomization objects, flux-system included>],
     "helmreleases": ["namespace/name", ...],
     "crds": ["gitrepositories.source.toolkit.fluxcd.io", ...],
     "sources": {"gitrepositories.source.toolkit.fluxcd.io": ["flux-system", ...]},
     "failing_kinds": {"<kind>": "<error message>"},
     "objects": [[ref, name, namespace], ...],   # what exists, by inventory
     "kinds_gone": [ref, ...],                   # kinds the API no longer serves
     "stuck": [[ref, name, namespace], ...],     # survive their Kustomization
     "volumes": [{"name": ..., "policy": "Delete" | "Retain"}],
     "volumes_stuck": false}

``-o jsonpath=`` templates are evaluated (range/end, field paths with escaped
dots, quoted literals), with kubectl's rule that a missing field prints
nothing. Anything else is an error (exit 3), so a new kind of call shows up.

Tests do not start Python once per call: ``serve(cluster, calls)`` answers
the calls from a thread of the test process on 127.0.0.1, and ``CLIENT`` is a
bash kubectl that sends its arguments there (bash's /dev/tcp) and prints the
answer's stdout and stderr and exits with its status. It does not read its
stdin, and neither does this fake when run as a script.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socketserver
import sys
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path

KS = "kustomizations.kustomize.toolkit.fluxcd.io"
HR = "helmreleases.helm.toolkit.fluxcd.io"
CRD = "customresourcedefinitions.apiextensions.k8s.io"
SINGULAR = {"gitrepositories": "gitrepository", "ocirepositories": "ocirepository",
            "helmrepositories": "helmrepository", "helmcharts": "helmchart", "buckets": "bucket"}


# -- jsonpath ---------------------------------------------------------------

def parse_template(template: str) -> list:
    """``{...}`` expressions and text, nested at range/end."""
    tokens = []
    for literal, expr in re.findall(r'([^{]*)(?:\{((?:"(?:[^"\\]|\\.)*"|[^}])*)\})?', template):
        if literal:
            tokens.append(("text", literal))
        if expr:
            tokens.append(("expr", expr.strip()))
    root: list = []
    stack = [root]
    for kind, value in tokens:
        if kind == "expr" and value.startswith("range "):
            node = ("range", value[len("range "):].strip(), [])
            stack[-1].append(node)
            stack.append(node[2])
        elif kind == "expr" and value == "end":
            stack.pop()
        else:
            stack[-1].append((kind, value))
    if len(stack) != 1:
        fail(f"fake kubectl: unbalanced range/end in {template!r}")
    return root


def field(obj, path: str):
    """``.a.b\\.c`` of obj; None when any step is missing."""
    path = path.removesuffix("[*]")
    keys = [k.replace("\0", ".") for k in path.replace("\\.", "\0").split(".") if k]
    for key in keys:
        if not isinstance(obj, dict) or key not in obj:
            return None
        obj = obj[key]
    return obj


def render(nodes: list, obj) -> str:
    out = []
    for node in nodes:
        if node[0] == "text":
            out.append(node[1])
        elif node[0] == "range":
            for item in field(obj, node[1]) or []:
                out.append(render(node[2], item))
        elif node[1].startswith('"'):
            out.append(json.loads(node[1]))
        else:
            value = field(obj, node[1])
            out.append("" if value is None else value if isinstance(value, str) else json.dumps(value))
    return "".join(out)


def jsonpath(template: str, obj) -> str:
    return render(parse_template(template), obj)


# -- the cluster ------------------------------------------------------------

class Failed(Exception):
    """kubectl's error: the message it prints on stderr, its exit status."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.message, self.code = message, code


def fail(message: str, code: int = 1) -> None:
    raise Failed(message, code)


def take(args: list[str], name: str) -> str | None:
    """Remove ``name VALUE`` or ``name=VALUE`` from args; return VALUE."""
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            value = args[i + 1]
            del args[i:i + 2]
            return value
        if arg.startswith(name + "="):
            del args[i]
            return arg.split("=", 1)[1]
    return None


def flag(args: list[str], name: str) -> bool:
    if name in args:
        args.remove(name)
        return True
    return False


def answer(argv: list[str], cluster_path: str | Path, calls_path: str | Path) -> tuple[int, str, str]:
    """One kubectl call: (exit status, stdout, stderr). Appends the call to
    calls_path and changes the cluster in cluster_path as the call would."""
    with open(calls_path, "a", encoding="utf-8") as calls:
        calls.write(" ".join(argv) + "\n")
    try:
        with open(cluster_path, encoding="utf-8") as f:
            cluster = json.load(f)
        args = list(argv)
        if args == ["config", "current-context"]:
            return 0, cluster["current_context"] + "\n", ""
        context = take(args, "--context")
        if context != cluster["context"]:
            fail(f"fake kubectl: --context {context!r}, but the cluster is {cluster['context']!r}", 3)
        namespace = take(args, "-n")
        output = take(args, "-o")
        ignore = flag(args, "--ignore-not-found")
        every_namespace = flag(args, "--all-namespaces")
        out = run(cluster, args, namespace, output, ignore, every_namespace)
        with open(cluster_path, "w", encoding="utf-8") as f:
            json.dump(cluster, f)
    except Failed as error:
        return error.code, "", error.message + "\n"
    except Exception:  # a bug in the fake shows as Python shows it, status 1
        return 1, "", traceback.format_exc()
    # jsonpath prints exactly the template's text; -o name ends in a newline.
    return 0, out if not out or (output or "").startswith("jsonpath=") else out + "\n", ""


def main(argv: list[str]) -> None:
    code, out, err = answer(argv, os.environ["FAKE_CLUSTER"], os.environ["FAKE_CALLS"])
    sys.stdout.write(out)
    sys.stderr.write(err)
    raise SystemExit(code)


# -- the fake served to a bash client -----------------------------------------

# Sends its arguments as "COUNT\0ARG\0..." and reads "STATUS\0STDOUT\0STDERR\0".
CLIENT = """#!/usr/bin/env bash
exec 3<>/dev/tcp/127.0.0.1/{port} || exit 1
printf '%s\\0' "$#" "$@" >&3
IFS= read -r -d '' code <&3 && IFS= read -r -d '' out <&3 && IFS= read -r -d '' err <&3 || {{
  echo "fake kubectl: no answer from 127.0.0.1:{port}" >&2
  exit 3
}}
printf '%s' "$out"
printf '%s' "$err" >&2
exit "$code"
"""


def read_field(stream) -> str:
    data = bytearray()
    while (byte := stream.read(1)) not in (b"\0", b""):
        data += byte
    if not byte:
        raise EOFError("the client closed the connection before the end of its call")
    return data.decode("utf-8")


class _Server(socketserver.TCPServer):
    def __init__(self, cluster_path: Path, calls_path: Path) -> None:
        self.cluster_path, self.calls_path = cluster_path, calls_path
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        count = int(read_field(self.rfile))
        argv = [read_field(self.rfile) for _ in range(count)]
        code, out, err = answer(argv, self.server.cluster_path, self.server.calls_path)
        self.wfile.write(f"{code}\0{out}\0{err}\0".encode("utf-8"))


@contextlib.contextmanager
def serve(cluster_path: Path, calls_path: Path) -> Iterator[str]:
    """Answer kubectl calls for the cluster in cluster_path from a thread on
    127.0.0.1 until the block ends; yields the text of the bash kubectl that
    calls it. Calls are answered one at a time, each reading and writing the
    cluster file."""
    server = _Server(cluster_path, calls_path)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01},
                              name="fake-kubectl", daemon=True)
    thread.start()
    try:
        yield CLIENT.format(port=server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def kustomization(cluster, name):
    return next((k for k in cluster["kustomizations"] if k["metadata"]["name"] == name), None)


def run(cluster, args, namespace, output, ignore, every_namespace) -> str:
    verb, rest = args[0], args[1:]
    if verb == "get" and rest[:1] == [KS] and len(rest) == 1 and output.startswith("jsonpath="):
        return jsonpath(output[len("jsonpath="):], {"items": cluster["kustomizations"]})
    if verb == "get" and rest[:1] == [KS] and len(rest) == 2:
        found = kustomization(cluster, rest[1])
        if found is None:
            if ignore:
                return ""
            fail(f'Error from server (NotFound): kustomizations.kustomize.toolkit.fluxcd.io "{rest[1]}" not found')
        if output == "name":
            return f"kustomization.kustomize.toolkit.fluxcd.io/{rest[1]}"
        return jsonpath(output[len("jsonpath="):], found)
    if verb == "patch" and rest[:1] == ["kustomization"]:
        found = kustomization(cluster, rest[1])
        patch = json.loads(rest[rest.index("-p") + 1])
        found["spec"].update(patch["spec"])
        return ""
    if verb == "delete" and rest[:1] == ["kustomization"]:
        found = kustomization(cluster, rest[1])
        if found is not None:
            cluster["kustomizations"].remove(found)
            gone = [entry(e) for e in found.get("status", {}).get("inventory", {}).get("entries", [])]
            cluster["objects"] = [o for o in cluster["objects"] if o not in gone or o in cluster["stuck"]]
        return ""
    if verb == "get" and rest[:1] == [CRD]:
        return f"customresourcedefinition.apiextensions.k8s.io/{rest[1]}" if rest[1] in cluster["crds"] else ""
    if verb == "get" and rest[:1] == ["persistentvolumes"]:
        items = [{"metadata": {"name": v["name"]}, "spec": {"persistentVolumeReclaimPolicy": v["policy"]}}
                 for v in cluster["volumes"]]
        return jsonpath(output[len("jsonpath="):], {"items": items})
    if verb == "wait":
        names = [a.split("/", 1)[1] for a in rest if a.startswith("persistentvolume/")]
        if cluster.get("volumes_stuck"):
            fail("error: timed out waiting for the condition on persistentvolumes/" + names[0])
        cluster["volumes"] = [v for v in cluster["volumes"] if v["name"] not in names]
        return ""
    if verb == "get" and len(rest) == 1 and rest[0].endswith(".source.toolkit.fluxcd.io"):
        kind = rest[0]
        if kind in cluster.get("failing_kinds", {}):
            fail(cluster["failing_kinds"][kind])
        if kind not in cluster["crds"]:
            fail(f'error: the server doesn\'t have a resource type "{kind}"')
        plural, group = kind.split(".", 1)
        return "\n".join(f"{SINGULAR[plural]}.{group}/{n}" for n in cluster["sources"].get(kind, []))
    if verb == "delete" and rest[:1] == [HR]:
        cluster["helmreleases"] = [] if "--all" in rest else cluster["helmreleases"]
        return ""
    if verb == "delete":
        return ""
    if verb == "get" and rest[:1] == [f"{KS},{HR}"] and every_namespace:
        listed = [f"kustomization.kustomize.toolkit.fluxcd.io/{k['metadata']['name']}"
                  for k in cluster["kustomizations"]]
        return "\n".join(listed + [f"helmrelease.helm.toolkit.fluxcd.io/{h.split('/')[1]}"
                                   for h in cluster["helmreleases"]])
    if verb == "get" and len(rest) == 2 and output == "name" and ignore:
        ref, name = rest
        if ref in cluster.get("kinds_gone", []):
            fail(f'error: the server doesn\'t have a resource type "{ref}"')
        if [ref, name, namespace or ""] in cluster["objects"]:
            return f"{ref.split('.', 1)[0].lower()}/{name}"
        return ""
    fail(f"fake kubectl: unexpected call: {' '.join(args)}", 3)
    return ""


def entry(e: dict) -> list[str]:
    """An inventory entry as [ref, name, namespace], the way the script names it."""
    namespace, name, group, kind = e["id"].split("_")
    return [kind + (f".{e['v']}.{group}" if group else ""), name, namespace]


if __name__ == "__main__":
    main(sys.argv[1:])
