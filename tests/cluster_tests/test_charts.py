"""The tier's chart mirror without a registry: which chart sources the tree
has, that each is behind a mirror variable, and that a chart the tier can
build must be a version the tree's refs admit (never relabelled)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from cluster import charts
from harness.model import PROJECT_ROOT

SOURCE = """\
apiVersion: source.toolkit.fluxcd.io/v1
kind: OCIRepository
metadata:
  name: widget
  namespace: widget
spec:
  interval: 10m
  url: {url}
  ref:
    tag: "1.2.3"
  layerSelector:
    mediaType: application/vnd.cncf.helm.chart.content.v1.tar+gzip
    operation: copy
"""


def test_every_chart_source_of_the_tree_has_sources_for_the_tier():
    found = charts.sources(PROJECT_ROOT)
    assert {s.upstream for s in found} <= set(charts.builds()), "add the chart to versions.yaml charts:"
    assert found, "the tree installs no chart?"
    for source in found:
        assert source.variable == "oci_mirror_" + source.host.replace(".", "_")


def test_a_chart_url_without_a_mirror_variable_is_refused_at_its_line(tmp_path):
    (tmp_path / "platform").mkdir()
    (tmp_path / "platform" / "widget.yaml").write_text(SOURCE.format(url="oci://example.org/charts/widget"))
    with pytest.raises(ValueError, match=r"platform/widget.yaml:8: .* not behind a mirror variable"):
        charts.sources(tmp_path)


def test_overlay_refs_are_read_with_the_base(tmp_path):
    (tmp_path / "apps" / "base").mkdir(parents=True)
    (tmp_path / "apps" / "base" / "widget.yaml").write_text(
        SOURCE.format(url="${oci_mirror_example_org:=oci://example.org}/charts/widget"))
    (tmp_path / "apps" / "prod").mkdir()
    (tmp_path / "apps" / "prod" / "kustomization.yaml").write_text(textwrap.dedent("""\
        resources: [../base]
        patches:
          - target: {kind: OCIRepository, name: widget}
            patch: |-
              - op: replace
                path: /spec/ref
                value: {semver: ">=1.2.0 <1.3.0"}
        """))
    (source,) = charts.sources(tmp_path)
    assert source.refs == ({"tag": "1.2.3"}, {"semver": ">=1.2.0 <1.3.0"})
    assert source.ref_lines == ("apps/base/widget.yaml:10", "apps/prod/kustomization.yaml:7")
    charts._check_admitted(source, "1.2.3")
    # Each error names the line that pins the version the tier cannot serve.
    with pytest.raises(charts.ChartError, match=r"^apps/base/widget.yaml:10: the tree pins \S+ to 1.2.3, and the only "
                                                r"widget chart the cluster tier can serve is 1.2.4"):
        charts._check_admitted(source, "1.2.4")
    only_range = charts.ChartSource(**{**source.__dict__, "refs": source.refs[1:], "ref_lines": source.ref_lines[1:]})
    with pytest.raises(charts.ChartError, match=r"^apps/prod/kustomization.yaml:7: the range '>=1.2.0 <1.3.0' .* "
                                                r"does not admit 1.3.0"):
        charts._check_admitted(only_range, "1.3.0")


def test_a_chart_version_the_proxy_does_not_give_is_reported_at_the_line_that_pins_it(tmp_path, monkeypatch):
    from toolchain import gomod

    (tmp_path / "platform").mkdir()
    (tmp_path / "platform" / "widget.yaml").write_text(
        SOURCE.format(url="${oci_mirror_example_org:=oci://example.org}/charts/widget").replace('"1.2.3"', "v9.9.9"))
    (tmp_path / "versions.yaml").write_text("charts:\n  oci://example.org/charts/widget:\n"
                                            "    module: example.org/widget\n    path: chart\n")

    def refuse(module, version, extra_env=None):
        raise gomod.ModuleVersionError(module, version, "missing", "404 Not Found: unknown revision v9.9.9",
                                       ["v1.0.0"])

    monkeypatch.setattr(gomod, "download", refuse)
    monkeypatch.setattr(charts, "shown", lambda root, where: where)

    class Live:
        live = True

    with pytest.raises(charts.ChartError, match=r"^platform/widget.yaml:10: the sources of the chart "
                                                r"oci://example.org/charts/widget at v9.9.9 .* cannot be fetched: "
                                                r"example.org/widget has no version v9.9.9: .* does not exist"):
        charts.publish(tmp_path, "127.0.0.1:1", "helm", tmp_path / "work", Live())


def test_a_placeholder_chart_version_takes_the_release_tag(tmp_path):
    (tmp_path / "Chart.yaml").write_text("apiVersion: v2\nname: x\nversion: v0.0.0\n")
    build = charts.ChartBuild("oci://quay.io/x", "example.org/x", None, "chart")
    assert charts.chart_version(tmp_path, build, "v1.21.2") == "v1.21.2"
    (tmp_path / "Chart.yaml").write_text("apiVersion: v2\nname: x\nversion: 6.9.2\n")
    assert charts.chart_version(tmp_path, build, "v1.21.2") == "6.9.2"
