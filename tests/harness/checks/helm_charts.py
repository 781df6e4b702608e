"""What the charts a cluster's HelmReleases install render, worked out
offline with the pinned helm: the one answer the ``references`` check (the
objects a chart makes, and what they name) and the API-server check (the
CRDs a chart installs, whole) share.

For every HelmRelease Flux applies on a cluster (``flux_render``), its chart
source (``spec.chartRef``: an OCIRepository of the same cluster) names the
chart's upstream address and version. versions.yaml ``charts:`` says where
that chart's sources are published (a Go module, the same pin the cluster
tier packages the chart from); the module is read from the Go module cache,
where ``nox -s docs-test`` fetches it (``python -m harness.checks.helm_charts
--fetch``), never from the network during a run. The chart is rendered as
helm-controller installs it: ``helm template`` with the release's name and
namespace, its ``spec.values`` on top of the ``valuesFrom`` the tree holds,
its CRDs (from the chart's ``crds/`` and from templates its values turn on),
without the chart's tests (unless ``spec.test.enable``), for the Kubernetes
version versions.yaml ``kubernetes.minimum`` names.

A module version is immutable, so each answer is kept in ``.tools/cache``
(``harness.build_cache``) keyed by the helm binary, the module, the chart's
path and every argument and value given. A chart that cannot be rendered
(helm or the sources missing, a chart with no sources in versions.yaml, a
release whose version the tree leaves to a range) is listed in
``ChartRender.unknown`` with the reason and what to run.

Post-renderers (``spec.postRenderers``) are not applied: a release that has
them is rendered without them, and ``unknown`` says so.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

import yamlload

from harness import build_cache, tools
from harness.checks import flux_render, yaml_docs
from harness.checks.cluster_inventory import Source
from harness.model import PROJECT_ROOT, Origin
from toolchain import pins

HELM_GROUP = "helm.toolkit.fluxcd.io"
# `helm template` errors that say nothing about the release: the sources here
# lack what the published chart carries (its dependencies), or cannot be read.
NOT_THE_RELEASES_FAULT = ("missing in charts/ directory", "not in the Go module cache", "did not finish")
SOURCE_GROUP = "source.toolkit.fluxcd.io"
TIMEOUT = 120


@dataclass
class ChartObject:
    """One object a chart renders for a HelmRelease, with what the
    ``references`` check needs to report on it."""

    data: dict
    source: Source  # as a provider of objects
    shown: str  # "Certificate podinfo/podinfo"
    locate: Callable[[list], Origin]  # a field of the object -> the HelmRelease line that leads to it
    context: str  # " (rendered by chart podinfo of HelmRelease podinfo/podinfo, podinfo/templates/...)"
    release_namespace: str  # where the release installs (the HelmRelease's own references name it)


@dataclass
class ReleaseChart:
    """What one HelmRelease's chart renders: every object, whole (CRDs
    included), or why that is not known."""

    release: flux_render.Applied
    chart: str = ""  # "podinfo (github.com/stefanprodan/podinfo@v1.8.1-...)"
    objects: list[dict] = field(default_factory=list)
    unknown: str = ""  # why the objects are not known (then ``objects`` is empty)

    def crds(self) -> list[dict]:
        return [data for data in self.objects if data.get("kind") == "CustomResourceDefinition"]


@dataclass
class ChartRender:
    releases: list[ReleaseChart] = field(default_factory=list)
    objects: list[ChartObject] = field(default_factory=list)
    # (why a chart's objects are not known, the namespace it installs into,
    # the HelmRelease's tree line)
    unknown: list[tuple[str, str, Origin]] = field(default_factory=list)
    rendered: list[str] = field(default_factory=list)  # "HelmRelease podinfo/podinfo: chart podinfo 6.9.2"
    # (the HelmRelease's values line, why): a chart that does not render with
    # the release's values, which helm-controller's install would fail on too
    failures: list[tuple[Origin, str]] = field(default_factory=list)


@dataclass(frozen=True)
class ChartSources:
    """Where versions.yaml ``charts:`` says a chart's sources are."""

    upstream: str
    module: str
    module_version: str | None
    path: str


def _versions(root: Path) -> dict:
    return pins.versions(root)


def chart_sources(root: Path) -> dict[str, ChartSources]:
    out = {}
    for upstream, spec in (_versions(Path(root)).get("charts") or {}).items():
        if isinstance(spec, dict) and spec.get("module") and spec.get("path"):
            out[str(upstream)] = ChartSources(str(upstream), str(spec["module"]), spec.get("module_version"),
                                              str(spec["path"]))
    return out


def _escape(text: str) -> str:
    """A module path or version as the module cache spells it (``!x`` for ``X``)."""
    return "".join(f"!{c.lower()}" if c.isupper() else c for c in text)


@functools.lru_cache(maxsize=1)
def module_cache() -> Path | None:
    if os.environ.get("GOMODCACHE"):
        return Path(os.environ["GOMODCACHE"])
    try:
        out = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out = ""
    if out:
        return Path(out)
    gopath = os.environ.get("GOPATH") or str(Path.home() / "go")
    return Path(gopath.split(os.pathsep)[0]) / "pkg" / "mod"


def module_dir(module: str, version: str) -> Path | None:
    """The module's sources in the Go module cache, when fetched."""
    cache = module_cache()
    if cache is None:
        return None
    path = cache / f"{_escape(module)}@{_escape(version)}"
    return path if path.is_dir() else None


def _find(render: flux_render.ClusterRender, group: str, kind: str, namespace: str, name: str):
    for obj in render.objects:
        if (obj.kind == kind and obj.name == name and obj.namespace == namespace
                and str(obj.data.get("apiVersion", "")).startswith(group + "/")):
            return obj
    return None


@dataclass(frozen=True)
class Plan:
    """How one HelmRelease's chart is rendered."""

    sources: ChartSources
    version: str  # the module version
    release: str
    namespace: str
    values: dict
    argv: tuple[str, ...]


def _values_from(release: flux_render.Applied, render: flux_render.ClusterRender) -> dict:
    """The values the tree's ConfigMaps and Secrets give through
    ``valuesFrom`` (what the tree does not hold is left out)."""
    merged: dict = {}
    for ref in (release.data.get("spec") or {}).get("valuesFrom") or []:
        if not isinstance(ref, dict) or ref.get("kind") not in ("ConfigMap", "Secret"):
            continue
        holder = next((o for o in render.objects if o.kind == ref["kind"] and o.name == ref.get("name")
                       and o.namespace == release.namespace), None)
        if holder is None:
            continue
        key = ref.get("valuesKey") or "values.yaml"
        text = (holder.data.get("stringData") or {}).get(key)
        if text is None:
            text = (holder.data.get("data") or {}).get(key)
            if text is not None and holder.kind == "Secret":
                text = base64.b64decode(str(text)).decode("utf-8", "replace")
        if text is None:
            continue
        try:
            value = yamlload.load(str(text))
        except yaml.YAMLError:
            continue
        if ref.get("targetPath"):
            node = merged
            steps = str(ref["targetPath"]).split(".")
            for step in steps[:-1]:
                node = node.setdefault(step, {})
            node[steps[-1]] = value
        elif isinstance(value, dict):
            merged = _merge(merged, value)
    return merged


def _merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for key, value in top.items():
        out[key] = _merge(out[key], value) if isinstance(out.get(key), dict) and isinstance(value, dict) else value
    return out


def _plan(root: Path, release: flux_render.Applied, render: flux_render.ClusterRender) -> Plan | str:
    """How to render ``release``'s chart, or why it cannot be."""
    spec = release.data.get("spec") or {}
    shown = f"HelmRelease {release.namespace}/{release.name}"
    chart_ref = spec.get("chartRef") if isinstance(spec.get("chartRef"), dict) else None
    if chart_ref is None or chart_ref.get("kind") != "OCIRepository":
        return f"{shown} takes its chart from {'a ' + str(chart_ref.get('kind')) if chart_ref else 'spec.chart'}, " \
               "which the offline tier does not render (only OCIRepository chart sources)"
    source = _find(render, SOURCE_GROUP, "OCIRepository", str(chart_ref.get("namespace") or release.namespace),
                   str(chart_ref.get("name")))
    if source is None:
        return f"{shown}: its chart source OCIRepository {chart_ref.get('name')} is not applied on the cluster"
    source_spec = source.data.get("spec") or {}
    url = str(source_spec.get("url") or "")
    known = chart_sources(root).get(url)
    if known is None:
        return (f"{shown}: versions.yaml `charts:` names no sources for its chart {url}; add them there "
                "(the cluster tier needs them too)")
    ref = source_spec.get("ref") or {}
    version = known.module_version or (str(ref["tag"]) if ref.get("tag") else None)
    if version is None:
        return (f"{shown}: its chart {url} follows a range and versions.yaml `charts:` names no module_version "
                "to render")
    namespace = str(spec.get("targetNamespace") or release.namespace)
    name = str(spec.get("releaseName") or (f"{spec['targetNamespace']}-{release.name}" if spec.get("targetNamespace")
                                           else release.name))
    values = _merge(_values_from(release, render), spec.get("values") or {})
    minimum = str((_versions(root).get("kubernetes") or {}).get("minimum") or "")
    argv = ["--namespace", namespace, "--include-crds"]
    if minimum:
        argv += ["--kube-version", f"{minimum}.0"]
    if not (spec.get("test") or {}).get("enable"):
        argv.append("--skip-tests")
    return Plan(known, version, name, namespace, values, tuple(argv))


def _readable(error: str | None) -> str | None:
    """helm's message without its prefix and its advice to rerun with --debug."""
    if error is None:
        return None
    return error.removeprefix("Error: ").replace(" Use --debug flag to render out invalid YAML", "")[-600:]


def _template(helm: str, plan: Plan) -> tuple[list[dict], str | None]:
    """(objects with their template, an error) of ``helm template``."""
    values = json.dumps(plan.values, sort_keys=True, default=str)
    name = build_cache.key("helm-template", helm, [
        ("chart", f"{plan.sources.module}@{plan.version}/{plan.sources.path}".encode()),
        ("release", plan.release.encode()), ("argv", "\0".join(plan.argv).encode()), ("values", values.encode()),
        ("objects", b"whole")])
    answer = build_cache.get("helm-template", name)
    if answer is not None:
        return answer["objects"], _readable(answer["error"])
    directory = module_dir(plan.sources.module, plan.version)
    if directory is None or not (directory / plan.sources.path).is_dir():
        return [], (f"the chart's sources {plan.sources.module}@{plan.version} are not in the Go module cache; "
                    "`nox -s docs-test` fetches them (or `PYTHONPATH=tests python -m harness.checks.helm_charts "
                    "--fetch`)")
    with tempfile.TemporaryDirectory(prefix="docs-test-helm-") as tmp:
        values_file = Path(tmp) / "values.yaml"
        values_file.write_text(values, encoding="utf-8")
        env = {"PATH": "/usr/bin:/bin", "HOME": tmp, "HELM_CACHE_HOME": tmp, "HELM_CONFIG_HOME": tmp,
               "HELM_DATA_HOME": tmp}
        try:
            proc = subprocess.run([helm, "template", plan.release, str(directory / plan.sources.path),
                                   "--values", str(values_file), *plan.argv],
                                  capture_output=True, text=True, timeout=TIMEOUT, env=env)
        except subprocess.TimeoutExpired:
            return [], f"`helm template` did not finish in {TIMEOUT}s"
    if proc.returncode != 0:
        error = " ".join(proc.stderr.split()).replace(str(directory), f"{plan.sources.module}@{plan.version}")
        build_cache.put("helm-template", name, {"objects": [], "error": error})
        return [], _readable(error)
    objects = []
    for document in proc.stdout.split("\n---"):
        template = ""
        for line in document.lstrip("-\n").split("\n")[:3]:
            if line.startswith("# Source: "):
                template = line[len("# Source: "):].strip()
        try:
            data = yamlload.load(document)
        except yaml.YAMLError:
            continue
        if isinstance(data, dict) and data.get("kind"):
            objects.append({"template": template, "object": data})
    build_cache.put("helm-template", name, {"objects": objects, "error": None})
    return objects, None


def _value_path(values: Any, wanted: str, path: list) -> list | None:
    """The path of the first scalar in ``values`` equal to ``wanted``."""
    if isinstance(values, dict):
        for key, value in values.items():
            found = _value_path(value, wanted, path + [key])
            if found is not None:
                return found
    elif isinstance(values, list):
        for index, value in enumerate(values):
            found = _value_path(value, wanted, path + [index])
            if found is not None:
                return found
    elif str(values) == wanted:
        return path
    return None


def _at(data: Any, path: list) -> Any:
    for step in path:
        if isinstance(data, dict) and step in data:
            data = data[step]
        elif isinstance(data, list) and isinstance(step, int) and step < len(data):
            data = data[step]
        else:
            return None
    return data


def _locator(release: flux_render.Applied, data: dict) -> Callable[[list], Origin]:
    """A field of a rendered object -> the HelmRelease line whose value it
    shows (a value equal to the name the field holds), else the release's
    values."""
    values = (release.data.get("spec") or {}).get("values")

    def locate(path: list) -> Origin:
        node = _at(data, path)
        name = node.get("name") if isinstance(node, dict) else node
        found = _value_path(values, str(name), ["spec", "values"]) if values and name is not None else None
        return release.field(found or (["spec", "values"] if values else ["spec", "chartRef"]))

    return locate


def _render(root: Path, render: flux_render.ClusterRender, helm: str | None) -> ChartRender:
    result = ChartRender()
    releases = [o for o in render.objects if o.kind == "HelmRelease"
                and str(o.data.get("apiVersion", "")).startswith(HELM_GROUP + "/")]
    for release in releases:
        shown = f"HelmRelease {release.namespace}/{release.name}"
        installs_into = str((release.data.get("spec") or {}).get("targetNamespace") or release.namespace)
        if helm is None:
            why = tools.missing_reason("helm", root)
            result.releases.append(ReleaseChart(release, unknown=why))
            result.unknown.append((f"the objects of {shown}'s chart are not known: {why}", installs_into,
                                   release.origin))
            continue
        plan = _plan(root, release, render)
        if isinstance(plan, str):
            result.releases.append(ReleaseChart(release, unknown=plan))
            result.unknown.append((f"the objects of its chart are not known: {plan}", installs_into, release.origin))
            continue
        if (release.data.get("spec") or {}).get("postRenderers"):
            result.unknown.append((f"{shown} has post-renderers, which the offline tier does not apply to its "
                                   "chart", installs_into, release.origin))
        objects, error = _template(helm, plan)
        chart = plan.sources.path.rsplit("/", 1)[-1]
        label = f"{chart} ({plan.sources.module}@{plan.version})"
        if error is not None:
            result.releases.append(ReleaseChart(release, label, unknown=f"`helm template` of {label} fails: {error}"))
            result.unknown.append((f"the objects of {shown}'s chart are not known: `helm template` of {label} "
                                   f"fails: {error}", installs_into, release.origin))
            if not any(words in error for words in NOT_THE_RELEASES_FAULT):
                spec = release.data.get("spec") or {}
                result.failures.append((release.field(["spec", "values"] if spec.get("values") else ["spec"]), (
                    f"{shown}: its chart {label} does not render with the release's values, so helm-controller "
                    f"cannot install it: {error}. Fix the values (the chart's values.yaml says what it reads)")))
            continue
        result.rendered.append(f"{shown}: chart {label}")
        released = ReleaseChart(release, label)
        result.releases.append(released)
        for item in objects:
            data = item["object"]
            meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else None
            if meta is None:
                continue
            if meta.get("name") and not meta.get("namespace") and data.get("kind") != "CustomResourceDefinition":
                # Helm installs into the release namespace (cluster-scoped kinds ignore it).
                meta["namespace"] = plan.namespace
            released.objects.append(data)
            where = f"chart {chart} of {shown} ({release.origin}), {item['template']}"
            ns = meta.get("namespace")
            context = f" (rendered by the chart {chart} of {shown}, {item['template']})"
            result.objects.append(ChartObject(data, Source("chart", where),
                                              f"{data.get('kind')} {ns + '/' if ns else ''}{meta.get('name')}",
                                              _locator(release, data), context, plan.namespace))
    return result


def _helm(root: Path) -> str | None:
    return tools.find("helm", root)


@functools.lru_cache(maxsize=16)
def _render_cluster(root: Path, cluster: str, _stamp: tuple, helm: str | None) -> ChartRender:
    return _render(root, flux_render.render_all(root)[cluster], helm)


def render(root: Path, cluster_render: flux_render.ClusterRender) -> ChartRender:
    """What the charts of ``cluster_render``'s HelmReleases render (worked
    out once per tree content, for every check that asks)."""
    root = Path(root).resolve()
    renders = flux_render.render_all(root)
    if renders.get(cluster_render.cluster) is not cluster_render:
        return _render(root, cluster_render, _helm(root))  # a render of the caller's own
    return _render_cluster(root, cluster_render.cluster, yaml_docs.stamp(root), _helm(root))


# -- fetching the sources (nox -s docs-test) ---------------------------------------


def fetch(root: Path = PROJECT_ROOT) -> list[str]:
    """Fetch the sources of every chart the tree installs, at every version
    it pins, into the Go module cache (through the module proxy, as the
    toolchain's builds do); returns what could not be fetched."""
    from cluster import charts as tier_charts
    from toolchain import gomod

    problems = []
    known = chart_sources(root)
    for source in tier_charts.sources(Path(root)):
        pins = known.get(source.upstream)
        if pins is None:
            continue  # the references check reports the chart as not known, with what to do
        versions = [pins.module_version] if pins.module_version else [str(r["tag"]) for r in source.refs if "tag" in r]
        for version in versions:
            if module_dir(pins.module, version) is not None:
                continue
            try:
                gomod.download(pins.module, version)
            except gomod.BuildError as error:
                problems.append(f"{source.where()}: {error}")
    return problems


def main(argv: list[str]) -> int:
    """``--fetch``: what ``nox -s docs-test`` runs before the tests. Without
    Go, or when a module cannot be fetched, it says so; the references check
    then lists the charts whose objects it does not know."""
    if argv != ["--fetch"]:
        print("usage: python -m harness.checks.helm_charts --fetch", file=sys.stderr)
        return 2
    try:
        problems = fetch(PROJECT_ROOT)
    except Exception as error:  # no Go, a tree the tier cannot read: the check reports what it cannot know
        problems = [str(error)]
    for problem in problems:
        print(f"chart sources not fetched: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
