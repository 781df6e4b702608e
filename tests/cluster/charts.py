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

import functools
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from harness.checks import yaml_docs
from harness.model import PROJECT_ROOT

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


@functools.lru_cache(maxsize=None)
def builds(root: Path = PROJECT_ROOT) -> dict[str, ChartBuild]:
    data = yaml.safe_load((Path(root) / "versions.yaml").read_text(encoding="utf-8")) or {}
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
            found[name] = ChartSource(rel, line, url, match["var"], match["host"],
                                      match["path"], (dict(spec.get("ref") or {}),))
    for overlay in sorted(root.glob("apps/*/kustomization.yaml")):
        data = yaml.safe_load(overlay.read_text(encoding="utf-8")) or {}
        for patch in data.get("patches") or []:
            target = patch.get("target") or {}
            if target.get("kind") != "OCIRepository" or target.get("name") not in found:
                continue
            for op in yaml.safe_load(patch.get("patch") or "[]") or []:
                if isinstance(op, dict) and op.get("path") == "/spec/ref":
                    source = found[target["name"]]
                    found[target["name"]] = ChartSource(**{**source.__dict__, "refs": (*source.refs, op["value"])})
    return list(found.values())


def chart_version(chart_dir: Path, build: ChartBuild, tag: str | None) -> str:
    """The chart's own version, or the release tag for sources whose
    Chart.yaml holds a placeholder (v0.0.0) that the release fills in."""
    declared = str((yaml.safe_load((chart_dir / "Chart.yaml").read_text(encoding="utf-8")) or {}).get("version", ""))
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
        gomod.writable_copy(gomod.download(build.module, module_version) / build.path, chart_dir)
        version = chart_version(chart_dir, build, tags[0] if tags else None)
        _check_admitted(source, version)
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


def _check_admitted(source: ChartSource, version: str) -> None:
    """The version built must be one every ref of the tree admits: equal to a
    tag, inside a semver range. Otherwise a cluster would wait for a chart
    the tier cannot serve, or the tier would have relabelled one."""
    from harness.masterminds_semver import parse_constraint

    for ref in source.refs:
        if "tag" in ref and str(ref["tag"]) != version:
            raise ValueError(f"{source.where()}: the tree pins {source.upstream} to {ref['tag']}, but the chart "
                             f"the cluster tier can build here is {version}; pin a version whose sources the "
                             "module proxy serves and say why beside the pin (versions.yaml charts:)")
        if "semver" in ref and not parse_constraint(str(ref["semver"])).admits(version):
            raise ValueError(f"{source.where()}: the range {ref['semver']!r} for {source.upstream} does not admit "
                             f"{version}, the chart the cluster tier can build here")
