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
"""

from __future__ import annotations

import json
import os
import re
import sys

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
        raise SystemExit(f"fake kubectl: unbalanced range/end in {template!r}")
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

def fail(message: str, code: int = 1) -> None:
    sys.stderr.write(message + "\n")
    raise SystemExit(code)


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


def main(argv: list[str]) -> None:
    with open(os.environ["FAKE_CALLS"], "a", encoding="utf-8") as calls:
        calls.write(" ".join(argv) + "\n")
    path = os.environ["FAKE_CLUSTER"]
    with open(path, encoding="utf-8") as f:
        cluster = json.load(f)
    args = list(argv)
    if args == ["config", "current-context"]:
        print(cluster["current_context"])
        return
    context = take(args, "--context")
    if context != cluster["context"]:
        fail(f"fake kubectl: --context {context!r}, but the cluster is {cluster['context']!r}", 3)
    namespace = take(args, "-n")
    output = take(args, "-o")
    ignore = flag(args, "--ignore-not-found")
    every_namespace = flag(args, "--all-namespaces")
    answer = run(cluster, args, namespace, output, ignore, every_namespace)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(cluster, f)
    # jsonpath prints exactly the template's text; -o name ends in a newline.
    sys.stdout.write(answer if not answer or (output or "").startswith("jsonpath=") else answer + "\n")


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
