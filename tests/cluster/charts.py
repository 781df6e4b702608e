"""The charts the tree installs, served by the tier's own registry.

The tree's chart sources are OCIRepository objects with the Helm chart
layer selector (``platform/controllers/cert-manager.yaml``,
``apps/base/podinfo/repository.yaml``), at upstream addresses behind cluster
variables: ``${oci_mirror_quay_io:=oci://quay.io}/jetstack/charts/cert-manager``.
The tier packages each chart with helm from the chart's own sources (the Go
module of the project that publishes it, fetched through the module proxy),
pushes it to the local registry under the same path, and sets the mirror
variables to that registry. A chart is never given a version it is not: the
version is the one the sources carry (or, for charts whose sources hold a
placeholder, the release tag the sources come from), and it must be one the
tree's ref admits.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yamlload

from harness.checks import yaml_docs
from harness.model import PROJECT_ROOT
from toolchain import pins

from .plan import Step
from .runner import Recorder

HELM_LAYER = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
_VARIABLE_URL = re.compile(r"^\$\{(?P<var>\w+):=oci://(?P<host>[^}/]+)\}/(?P<path>.+)$")


@dataclass(frozen=True)
class ChartSource:
    """One OCIRepository of the tree that serves a Helm chart."""

    file: str
    line: int
    url: str  # as written: ${oci_mirror_quay_io:=oci://quay.io}/jetstack/charts/cert-manager
    variable: str  # oci_mirror_quay_io
    host: str  # quay.io
    path: str  # jetstack/charts/cert-manager
    refs: tuple[dict, ...]  # the base's ref and every overlay's
    # "file:line" that writes each of ``refs`` (the base's ref, each overlay's patch value).
    ref_lines: tuple[str, ...] = ()

    def ref_where(self, index: int) -> str:
        return self.ref_lines[index] if index < len(self.ref_lines) else self.where()

    @property
    def upstream(self) -> str:
        return f"oci://{self.host}/{self.path}"

    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class ChartBuild:
    """Where the tier gets a chart's sources (versions.yaml ``charts:``)."""

    upstream: str
    module: str
    module_version: str | None  # None: the version is the tree's tag
    path: str


def builds(root: Path = PROJECT_ROOT) -> dict[str, ChartBuild]:
    data = pins.versions(root)
    out = {}
    for upstream, spec in (data.get("charts") or {}).items():
        out[upstream] = ChartBuild(upstream, spec["module"], spec.get("module_version"), spec["path"])
    return out


def sources(root: Path) -> list[ChartSource]:
    """Every chart source in the tree, with the refs its overlays set."""
    found: dict[str, ChartSource] = {}
    for rel in yaml_docs.yaml_files(root):
        if not rel.startswith(("platform/", "apps/")):
            continue
        # As written, before substitution: the url must name its variable.
        docs, _error = yaml_docs.parse((root / rel).read_text(encoding="utf-8"))
        for doc in docs:
            data = doc.data
            if not doc.is_object or data.get("kind") != "OCIRepository":
                continue
            spec = data.get("spec") or {}
            if (spec.get("layerSelector") or {}).get("mediaType") != HELM_LAYER:
                continue
            url = str(spec.get("url", ""))
            line = yaml_docs.line_of(data, ["spec", "url"], doc.line) + 1
            match = _VARIABLE_URL.match(url)
            if not match:
                raise ValueError(
                    f"{rel}:{line}: the chart source's url {url!r} is not behind a mirror "
                    "variable; write it as ${oci_mirror_<registry>:=oci://<registry>}/<path> (CONTRIBUTING.md, "
                    "Cluster variables) so a mirror can serve it"
                )
            name = data.get("metadata", {}).get("name", "")
            ref = dict(spec.get("ref") or {})
            ref_key = next((k for k in ("tag", "semver", "digest") if k in ref), None)
            ref_line = yaml_docs.line_of(data, ["spec", "ref", ref_key] if ref_key else ["spec", "ref"], doc.line) + 1
            found[name] = ChartSource(rel, line, url, match["var"], match["host"],
                                      match["path"], (ref,), (f"{rel}:{ref_line}",))
    for overlay in sorted(root.glob("apps/*/kustomization.yaml")):
        text = overlay.read_text(encoding="utf-8")
        data = yamlload.load(text) or {}
        rel = str(overlay.relative_to(root))
        for patch in data.get("patches") or []:
            target = patch.get("target") or {}
            if target.get("kind") != "OCIRepository" or target.get("name") not in found:
                continue
            for op in yamlload.load(patch.get("patch") or "[]") or []:
                if isinstance(op, dict) and op.get("path") == "/spec/ref":
                    source = found[target["name"]]
                    where = f"{rel}:{_value_line(text, op['value'])}"
                    found[target["name"]] = ChartSource(**{**source.__dict__, "refs": (*source.refs, op["value"]),
                                                           "ref_lines": (*source.ref_lines, where)})
    return list(found.values())


def _value_line(text: str, value) -> int:
    """The 1-based line of ``text`` that writes a patch's ref value (its
    version), or of the first ``/spec/ref`` path (0 when neither is there)."""
    wanted = [str(v) for v in (value.values() if isinstance(value, dict) else [value])]
    lines = text.split("\n")
    for number, line in enumerate(lines, 1):
        if "value:" in line and all(w in line for w in wanted):
            return number
    for number, line in enumerate(lines, 1):
        if "/spec/ref" in line:
            return number
    return 0


def chart_version(chart_dir: Path, build: ChartBuild, tag: str | None) -> str:
    """The chart's own version, or the release tag for sources whose
    Chart.yaml holds a placeholder (v0.0.0) that the release fills in."""
    declared = str((yamlload.load((chart_dir / "Chart.yaml").read_text(encoding="utf-8")) or {}).get("version", ""))
    if declared.lstrip("v") not in ("0.0.0", ""):
        return declared
    if not build.module_version and tag:
        return tag
    raise ValueError(f"{build.upstream}: {build.module}/{build.path} has placeholder version {declared} "
                     "and no release tag to take the version from")


def publish(root: Path, registry_host: str, helm: str, work: Path, runner: Recorder) -> dict[str, str]:
    """Package and push every chart the tree installs; returns the mirror
    variables (``oci_mirror_quay_io`` -> ``oci://127.0.0.1:5001``) keyed by
    upstream registry host."""
    from toolchain import gomod

    mirrors: dict[str, str] = {}
    known = builds(root)
    for source in sources(root):
        build = known.get(source.upstream)
        if build is None:
            raise LookupError(f"{source.where()}: the cluster tier has no sources for the chart "
                              f"{source.upstream}; add it to versions.yaml `charts:`")
        tags = [r["tag"] for r in source.refs if "tag" in r]
        module_version = build.module_version or (tags[0] if tags else None)
        pinned_at = versions_line(root, source.upstream, "module_version") if build.module_version else \
            next((source.ref_where(i) for i, r in enumerate(source.refs) if "tag" in r), source.where())
        if module_version is None:
            raise LookupError(f"{source.where()}: {source.upstream} has no tag to build, and versions.yaml "
                              "charts: names no module_version")
        mirrors[source.host] = f"oci://{registry_host}"
        step = Step([helm, "push", f"{source.path.rsplit('/', 1)[-1]}-<version>.tgz",
                     f"oci://{registry_host}/{source.path.rsplit('/', 1)[0]}", "--plain-http"],
                    note=f"chart {source.upstream} from {build.module}@{module_version}/{build.path}, "
                         f"packaged with helm and pushed to the local registry")
        if not runner.live:
            runner.run(step)
            continue
        chart_dir = work / "charts" / source.path.rsplit("/", 1)[-1]
        if chart_dir.exists():
            shutil.rmtree(chart_dir)
        try:
            fetched = gomod.download(build.module, module_version)
        except gomod.ModuleVersionError as error:
            raise ChartError(
                f"{shown(root, pinned_at)}: the sources of the chart {source.upstream} at {module_version} "
                f"({build.module}@{module_version}, {build.path}) cannot be fetched: {error}") from None
        gomod.writable_copy(fetched / build.path, chart_dir)
        version = chart_version(chart_dir, build, tags[0] if tags else None)
        _check_admitted(source, version, root)
        out = work / "charts" / "packages"
        out.mkdir(parents=True, exist_ok=True)
        package = _helm(helm, ["package", str(chart_dir), "--destination", str(out), "--version", version,
                               *(["--app-version", version] if not build.module_version else [])])
        tgz = package.strip().rsplit(":", 1)[-1].strip()
        step.argv[2] = tgz
        runner.run(step)
    return mirrors


def _helm(helm: str, args: list[str]) -> str:
    proc = subprocess.run([helm, *args], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"helm {' '.join(args[:2])} failed: {proc.stderr.strip()[-800:]}")
    return proc.stdout


class ChartError(ValueError):
    """The tier cannot serve a chart the tree asks for; the message starts
    with the line that pins it."""


def versions_line(root: Path, upstream: str, key: str) -> str:
    """``versions.yaml:N`` of ``key`` in the ``charts:`` entry of ``upstream``."""
    lines = (Path(root) / "versions.yaml").read_text(encoding="utf-8").split("\n")
    start = next((n for n, line in enumerate(lines) if line.strip() == f"{upstream}:"), None)
    if start is None:
        return "versions.yaml"
    for number in range(start + 1, len(lines)):
        if lines[number] and not lines[number].startswith("    "):
            break
        if lines[number].strip().startswith(f"{key}:"):
            return f"versions.yaml:{number + 1}"
    return f"versions.yaml:{start + 1}"


def shown(root: Path, where: str) -> str:
    """``page:line (file:line)`` when a page shows that tree line, else
    ``file:line`` (only worked out for a message: it extracts the pages)."""
    from harness.model import Origin

    from .locate import Locator, shown_at

    path, _, line = where.rpartition(":")
    if not line.isdigit():
        return where
    located = shown_at(Locator(root).blocks, Origin(path, int(line)))
    return str(located) if located else where


def _check_admitted(source: ChartSource, version: str, root: Path | None = None) -> None:
    """The version built must be one every ref of the tree admits: equal to a
    tag, inside a semver range. Otherwise a cluster would wait for a chart
    the tier cannot serve, or the tier would have relabelled one."""
    from harness.masterminds_semver import parse_constraint

    for index, ref in enumerate(source.refs):
        where = source.ref_where(index)
        where = shown(root, where) if root is not None else where
        if "tag" in ref and str(ref["tag"]) != version:
            raise ChartError(
                f"{where}: the tree pins {source.upstream} to {ref['tag']}, and the only {source.upstream.rsplit('/', 1)[-1]} "
                f"chart the cluster tier can serve is {version}, from the sources versions.yaml `charts:` names. If "
                f"{ref['tag']} is not a release of the chart, fix the pin; if it is one, its sources are not served "
                f"here: keep {version} pinned and say why beside the pin (the proxy serves no sources of "
                f"{ref['tag']}), or point versions.yaml `charts:` at sources of {ref['tag']}")
        if "semver" in ref and not parse_constraint(str(ref["semver"])).admits(version):
            raise ChartError(f"{where}: the range {ref['semver']!r} for {source.upstream} does not admit "
                             f"{version}, the only chart the cluster tier can serve (from the sources "
                             "versions.yaml `charts:` names); widen the range or fix it")
