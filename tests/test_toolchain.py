"""Tests of the toolchain (``tests/toolchain``): what versions.yaml pins, how
the recipes read the modules they build, and the cache's rules. Nothing here
runs a Go build; the builds themselves are exercised by ``nox -s tools``."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from harness.model import PROJECT_ROOT
from toolchain import cache, components, gomod, install, pins, recipes


def test_every_tool_has_a_version_a_recipe_and_binaries():
    tools = pins.tools()
    from toolchain.builders import BUILDERS, builder

    for tool in tools.values():
        assert tool.build in BUILDERS, tool
        assert callable(builder(tool)), tool
        assert tool.binaries, tool
        keyed = tool.build in pins.KEYED
        assert (tool.version.startswith("k") if keyed else tool.version.startswith("v")) \
            or tool.version == "unresolved", tool
    # the binaries the harness and the cluster tier ask for by name
    for binary in ("kustomize", "flux", "kubectl", "kube-apiserver", "etcd", "kwokctl", "helm", "registry",
                   "source-controller", "notification-controller"):
        assert pins.tool_for_binary(binary) is not None, binary


def test_the_flux_cli_takes_flux_version():
    data = pins.versions()
    assert pins.tools()["flux"].version == "v" + str(data["flux"]["version"]).lstrip("v")


def test_default_binary_names_drop_a_major_version_suffix():
    assert pins._default_binaries("kustomize", "go-install", ("sigs.k8s.io/kustomize/kustomize/v5",)) == ["kustomize"]
    assert pins._default_binaries("x", "go-wrapper", ("cmd/kube-apiserver", "cmd/kubectl")) == [
        "kube-apiserver", "kubectl"]
    assert pins._default_binaries("flux", "flux-cli", ("github.com/fluxcd/flux2/v2",)) == ["flux"]


def test_unknown_tier_is_an_error(tmp_path):
    (tmp_path / "versions.yaml").write_text(textwrap.dedent("""\
        flux: {version: "2.9.5"}
        tools:
          thing: {module: example.org/thing, version: v1.0.0, tiers: [nightly]}
        """))
    with pytest.raises(ValueError, match=r"tools.thing.tiers: unknown \['nightly'\]"):
        pins.tools(tmp_path)


def test_local_replaces_are_the_ones_a_module_zip_cannot_satisfy(tmp_path):
    go_mod = tmp_path / "go.mod"
    go_mod.write_text(textwrap.dedent("""\
        module example.org/m

        go 1.25.0

        replace example.org/m/api => ./api

        replace github.com/opencontainers/go-digest => github.com/opencontainers/go-digest v1.0.1

        replace (
        \tk8s.io/api => ./staging/src/k8s.io/api // comment
        \tgo.etcd.io/etcd/api/v3 => ../api
        \tgo.etcd.io/etcd => ./FORBIDDEN_DEPENDENCY
        )
        """))
    assert gomod.local_replaces(go_mod) == ["example.org/m/api", "k8s.io/api", "go.etcd.io/etcd/api/v3"]
    assert gomod.go_directive(go_mod) == "1.25.0"


def test_bundled_components_are_read_from_flux2s_bases(tmp_path):
    for name, version in (("source-controller", "v1.9.5"), ("source-watcher", "v2.2.4")):
        base = tmp_path / "manifests" / "bases" / name
        base.mkdir(parents=True)
        (base / "kustomization.yaml").write_text(
            f"resources:\n- https://github.com/fluxcd/{name}/releases/download/{version}/{name}.crds.yaml\n"
            f"- https://github.com/fluxcd/{name}/releases/download/{version}/{name}.deployment.yaml\n- account.yaml\n")
    assert components.read_bases(tmp_path) == {"source-controller": "v1.9.5", "source-watcher": "v2.2.4"}
    watcher = components.Component("source-watcher", "v2.2.4", "v2.2.3", "refused")
    assert watcher.module == "github.com/fluxcd/source-watcher/v2"
    assert components.Component("source-controller", "v1.9.5", "v1.9.5", "").module == \
        "github.com/fluxcd/source-controller"


def components_memo(tmp_path: Path, name: str, versions: dict[str, str]) -> Path:
    """What components.bundled or installed_by_operator remembered in the
    tool cache under ``tmp_path / "cache"`` (so no module is downloaded)."""
    memo = tmp_path / "cache" / "tools" / ".components" / name
    memo.parent.mkdir(parents=True, exist_ok=True)
    memo.write_text(json.dumps(versions))
    return memo


def test_served_instead_must_name_what_flux_really_bundles(tmp_path, monkeypatch):
    monkeypatch.setenv("GITOPS_WHITEPAPER_CACHE", str(tmp_path / "cache"))
    (tmp_path / "versions.yaml").write_text(textwrap.dedent("""\
        flux:
          version: "2.9.5"
          served_instead:
            notification-controller: {bundled: v1.9.0, built: v1.8.0, why: test}
        """))
    components_memo(tmp_path, "flux-v2.9.5.json", {"notification-controller": "v1.9.4"})
    with pytest.raises(gomod.BuildError, match="says Flux bundles v1.9.0, but flux v2.9.5 bundles v1.9.4"):
        components.bundled("v2.9.5", pins.served_instead(tmp_path))


def test_the_flux_operators_controllers_are_read_from_its_data(tmp_path, monkeypatch):
    # Its data folder as config/data holds it: the newest Flux of the minor
    # wins, and each image's tag and digest are read.
    data = tmp_path / "data"
    for version in ("v2.9.4", "v2.9.10", "v2.10.0"):
        (data / "flux-images" / version).mkdir(parents=True)
        (data / "flux-images" / version / "upstream-alpine.yaml").write_text(textwrap.dedent(f"""\
            images:
              - name: ghcr.io/fluxcd/source-controller
                newTag: v1.9.{version.rsplit('.', 1)[1]}
                digest: sha256:{version[-1] * 64}
            """))
    assert components.operator_flux(data, "2.9") == "v2.9.10"
    assert components.operator_images(data, "v2.9.10") == {"source-controller": ("v1.9.10", "sha256:" + "0" * 64)}
    with pytest.raises(gomod.BuildError, match="holds no Flux 2.8.x"):
        components.operator_flux(data, "2.8")


def test_an_operator_controller_served_instead_must_name_what_the_operator_installs(tmp_path, monkeypatch):
    monkeypatch.setenv("GITOPS_WHITEPAPER_CACHE", str(tmp_path / "cache"))
    (tmp_path / "versions.yaml").write_text(textwrap.dedent("""\
        flux:
          version: "2.9.5"
        tools:
          flux-operator: {build: flux-operator, module: example.org/operator, version: v0.1.0}
          operator-helm-controller:
            build: flux-controller
            module: github.com/fluxcd/helm-controller
            installed_by: flux-operator
            served_instead: {installed: v1.6.2, built: v1.6.4, why: test}
        """))
    memo = components_memo(tmp_path, "flux-operator-v0.1.0-flux-2.9.json", {"helm-controller": "v1.6.3"})
    pins._tools.cache_clear()  # another tree of this folder may have been read already
    try:
        with pytest.raises(ValueError, match="says flux-operator installs v1.6.2, but it installs v1.6.3"):
            pins.tools(tmp_path)
        memo.write_text(json.dumps({"helm-controller": "v1.6.2"}))
        tool = pins.tools(tmp_path)["operator-helm-controller"]
        assert (tool.version, tool.binaries, tool.image) == ("v1.6.4", ("helm-controller",), False)
    finally:
        pins._tools.cache_clear()


def test_a_cache_entry_counts_only_once_its_record_and_binaries_exist(tmp_path, monkeypatch):
    monkeypatch.setenv("GITOPS_WHITEPAPER_CACHE", str(tmp_path))
    tool = recipes.Tool("thing", "go-install", "example.org/thing", "v1.0.0", ("example.org/thing",), ("thing",),
                     ("offline",))
    assert cache.record(tool) is None
    scratch = cache.scratch(tool)
    (scratch / "bin" / "thing").write_text("#!/bin/sh\n")
    (scratch / "bin" / "thing").chmod(0o755)
    assert cache.record(tool) is None, "a build in progress is not a cached tool"
    final = cache.commit(tool, scratch, {"source": "test"})
    assert final == tmp_path / "tools" / "thing" / "v1.0.0"
    assert cache.record(tool)["source"] == "test"
    (final / "bin" / "thing").unlink()
    assert cache.record(tool) is None, "an entry missing a binary is not a cached tool"


def test_stale_scratch_folders_are_removed(tmp_path, monkeypatch):
    monkeypatch.setenv("GITOPS_WHITEPAPER_CACHE", str(tmp_path))
    dead = tmp_path / "tools" / "thing" / ".v1.building-999999999-1"
    dead.mkdir(parents=True)
    cache.discard_stale_scratch()
    assert not dead.exists()


def test_lookup_order_is_cache_then_tools_bin_then_path(tmp_path, monkeypatch):
    monkeypatch.setenv("GITOPS_WHITEPAPER_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "project"
    (root / ".tools" / "bin").mkdir(parents=True)
    (root / "versions.yaml").write_text('flux: {version: "2.9.5"}\ntools:\n  kustomize:\n'
                                        '    module: sigs.k8s.io/kustomize/kustomize/v5\n    version: v5.8.1\n')
    on_path = tmp_path / "path"
    on_path.mkdir()
    for folder in (on_path, root / ".tools" / "bin"):
        exe = folder / "kustomize"
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
    monkeypatch.setenv("PATH", str(on_path))
    assert install.find_binary("kustomize", root) == str(root / ".tools" / "bin" / "kustomize")
    (root / ".tools" / "bin" / "kustomize").unlink()
    assert install.find_binary("kustomize", root) == str(on_path / "kustomize")
    tool = pins.tools(root)["kustomize"]
    scratch = cache.scratch(tool)
    (scratch / "bin" / "kustomize").write_text("#!/bin/sh\n")
    (scratch / "bin" / "kustomize").chmod(0o755)
    cache.commit(tool, scratch, {"source": "test"})
    assert install.find_binary("kustomize", root) == str(cache.binary(tool, "kustomize"))


def test_without_go_a_missing_tool_says_so_and_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.setenv("GITOPS_WHITEPAPER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    tool = recipes.Tool("thing", "go-install", "example.org/thing", "v1.0.0", ("example.org/thing",), ("thing",),
                     ("offline",))
    outcome = install.ensure(tool)
    assert not outcome.ok and "Go is not installed" in outcome.how
    assert not (tmp_path / "cache" / "tools" / "thing").exists()


@pytest.mark.parametrize("name", ["kustomize", "flux", "helm"])
def test_the_offline_tier_tools_are_pinned_for_it(name):
    assert "offline" in pins.tools()[name].tiers


def test_no_file_but_versions_yaml_pins_a_tool():
    """One pin per thing: a tool's module at its version (``module@vX``)
    is written nowhere but versions.yaml."""
    import subprocess

    files = subprocess.run(["git", "-C", str(PROJECT_ROOT), "ls-files", "--cached", "--others", "--exclude-standard"],
                           capture_output=True, text=True, check=True).stdout.split()
    pinned = [f"{t.module}@{t.version}" for t in pins.tools().values() if t.version.startswith("v")]
    found = []
    for rel in files:
        if rel == "versions.yaml" or not rel.endswith((".py", ".md", ".yaml", ".yml", ".sh", ".toml", ".txt")):
            continue
        path = PROJECT_ROOT / rel
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        found += [f"{rel}: {pin}" for pin in pinned if pin in text]
    assert not found, "pinned again outside versions.yaml:\n" + "\n".join(found)


def test_a_version_the_proxy_does_not_give_is_told_apart_by_its_answer():
    """Only a refusal of a version the proxy knows advises pinning the
    nearest served one; a version that does not exist is reported as such,
    and a 403 on its .info (which this proxy answers for a typo too) says
    that it cannot tell."""

    missing = ("example.org/m@v9.9.9: reading https://proxy.golang.org/example.org/m/@v/v9.9.9.info: 404 Not Found; "
               "server response: not found: example.org/m@v9.9.9: invalid version: unknown revision v9.9.9")
    refused_zip = "example.org/m@v1.2.4: reading https://proxy.golang.org/example.org/m/@v/v1.2.4.zip: 403 Forbidden"
    refused_info = "example.org/m@v1.2.4: reading https://proxy.golang.org/example.org/m/@v/v1.2.4.info: 403 Forbidden"
    assert gomod.classify(missing) == "missing"
    assert gomod.classify(refused_zip) == "refused"
    assert gomod.classify(refused_info) == "unknown"
    served = ["v1.2.2", "v1.2.3", "v1.3.0"]
    texts = {kind: str(gomod.ModuleVersionError("example.org/m", "v1.2.4", kind, "x", served))
             for kind in ("missing", "refused", "unknown")}
    assert "has no version v1.2.4" in texts["missing"] and "nearest" not in texts["missing"]
    assert "the module proxy refuses this exact version" in texts["refused"]
    assert "pin the nearest served one (v1.2.3)" in texts["refused"]
    assert "refuses this exact version" not in texts["unknown"]
    assert "does not say whether v1.2.4 exists" in texts["unknown"]
    assert gomod.nearest_version("v1.2.4", served) == "v1.2.3"
    assert gomod.nearest_version("v0.1.0", served) == "v1.2.2"


def test_a_tool_version_error_names_the_versions_yaml_line():
    tools = pins.tools(PROJECT_ROOT)
    lines = (PROJECT_ROOT / "versions.yaml").read_text(encoding="utf-8").split("\n")
    for name in ("kustomize", "flux", "source-controller"):
        where = install.pinned_at(tools[name])
        line = lines[int(where.split(":")[1]) - 1]
        assert line.strip().startswith("version:"), (name, where, line)
    assert lines[int(install.pinned_at(tools["kustomize"]).split(":")[1]) - 1].strip() == \
        f"version: {tools['kustomize'].version}"


def test_no_module_of_the_toolchain_imports_one_above_it():
    """The layering recipes.py describes: data and the go command at the
    bottom, then cache, components, pins, the builders, install on top."""
    import ast

    layer = {"recipes": 0, "gomod": 0, "inputs": 0, "cache": 1, "components": 2, "pins": 3, "builders": 4,
             "install": 5, "__main__": 6}
    folder = PROJECT_ROOT / "tests" / "toolchain"
    wrong = []
    for path in sorted(folder.rglob("*.py")):
        rel = path.relative_to(folder)
        mine = "builders" if rel.parts[0] == "builders" else rel.stem
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = (node.module or "").split(".")[0]
                targets = [base] if base else [alias.name for alias in node.names]
                if rel.parts[0] == "builders" and node.level == 1:
                    continue  # a builder's own helpers
                for target in targets:
                    if layer.get(target, -1) >= layer[mine] and target != mine:
                        wrong.append(f"{rel}: imports {target}")
    assert not wrong, "imports back up the toolchain's layers:\n" + "\n".join(wrong)


def test_a_keyed_recipe_changes_key_with_any_input(tmp_path, monkeypatch):
    """The kind tier's images are rebuilt when anything they are made of
    changes: a needed tool's version, or the prebuilt archive."""
    tools = pins.tools()
    node, images = tools["kind-node"], tools["kind-images"]
    bumped = dict(tools)
    bumped["coredns"] = recipes.Tool(**{**tools["coredns"].__dict__, "version": "v9.9.9"})
    assert pins.input_key(node, bumped, PROJECT_ROOT) != node.version
    archive = tmp_path / "cert-manager-v1.21.1-linux-amd64.tar.xz"
    archive.write_bytes(b"one")
    monkeypatch.setenv(pins.PREBUILT_ENV, str(tmp_path))
    first = pins.input_key(images, tools, PROJECT_ROOT)
    archive.write_bytes(b"two")
    pins.file_digest.cache_clear()
    assert pins.input_key(images, tools, PROJECT_ROOT) != first


def test_image_only_programs_are_never_looked_up_to_run():
    assert pins.tool_for_binary("etcd").name == "etcd"  # kwok's, never the node's
    assert pins.tool_for_binary("kubelet") is None
