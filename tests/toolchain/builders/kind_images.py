"""The images the kind tier's clusters run besides the node's own, named and
tagged exactly as what installs them asks, so no manifest, chart value or
tree file changes to point at them:

- the Flux controllers, as the flux CLI's embedded install manifests name
  them (``flux install --export``); each from the controller the toolchain
  built, whose version must be the tag the manifest asks for;
- the Flux Operator, as its ``install.yaml`` names it, with the Flux
  manifests it installs from in ``/data`` (as its own image carries them),
  and the controllers it installs, tagged as its data lists them (it asks
  for them by digest too: a built image cannot have the digest of the
  published one, so the tier names them by those digests inside each node
  and says so; ``by_digest`` in the record lists them);
- podinfo, as its chart's values name it (the chart the tree installs, from
  the module commit versions.yaml ``charts:`` names), with the module's
  ``ui/`` folder;
- the registry, as the tier runs it (``registry:<tools.registry version>``),
  and the tier's client pod (``gwp.local/tier-client``: curl);
- the programs versions.yaml lists under ``prebuilt:`` (cert-manager's
  five), at the version the tree's chart pins, from an archive in the folder
  ``$GITOPS_WHITEPAPER_PREBUILT`` names, or loaded as they are from image
  archives (``docker save``) found there.

Programs go on the ``static`` base (users, CA certificates, /tmp) and run as
a numbered non-root user, which ``runAsNonRoot`` can verify.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tarfile
from pathlib import Path

import yamlload

from .. import components, gomod
from ..inputs import chart_pin, file_digest
from ..recipes import Build, Tool
from . import images

PREBUILT_ENV = "GITOPS_WHITEPAPER_PREBUILT"
CLIENT = "gwp.local/tier-client:{key}"
FLUX_IMAGE = re.compile(r"^\s*image:\s*(ghcr\.io/fluxcd/(?P<name>[\w-]+):(?P<tag>\S+))\s*$", re.M)
OPERATOR_IMAGE = re.compile(r"^\s*image:\s*(\S+/flux-operator:(?P<tag>\S+))\s*$", re.M)
# Where the operator's FluxInstance of the tree takes the controllers from
# (create/flux-operator/flux-instance.yaml, spec.distribution.registry).
OPERATOR_REGISTRY = "ghcr.io/fluxcd"
# /etc/os-release of the Flux Operator's image (see operator_images).
OS_RELEASE = """# The kind tier's static base: Debian {version}'s users, groups and CA
# certificates, made in place of distroless/static, which the Flux
# Operator's release image is built on and its preflight check asks for.
PRETTY_NAME="Distroless"
NAME="Debian GNU/Linux"
ID="debian"
VERSION_ID="{version}"
VERSION="Debian GNU/Linux {version} ({suite})"
"""
DEBIAN_RELEASES = {"bookworm": "12", "trixie": "13"}
REGISTRY_CONFIG = """version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: /var/lib/registry
  delete:
    enabled: true
http:
  addr: :5000
"""


def build(tool: Tool, b: Build) -> dict:
    flux = flux_images(b)
    operator, by_digest = operator_images(b, {image.name for image in flux})
    charts = [podinfo_image(b)]
    registry = registry_image(b)
    # The tier's own client pod (curl, CA certificates), which calls podinfo
    # over its Service and TLS; no tree file names it.
    client = images.Image(CLIENT.format(key=tool.version), "iptables", user="65532:65532")
    notes = {}
    with images.engine() as eng:
        bases = images.import_bases(eng, b, b.need("debian-rootfs"), tool.version)
        loaded: list[str] = []
        for name, spec in (tool.extra.get("prebuilt") or {}).items():
            made, how = prebuilt_images(eng, b, name, spec)
            charts += made
            loaded += how.get("loaded", [])
            notes[name] = how["source"]
        wanted = [*flux, *operator, *charts, registry, client]
        for image in wanted:
            image.base = bases.get(image.base, image.base)
            images.build_image(eng, b, image)
        names = [n for image in wanted for n in (image.name, *image.also)] + loaded
        images.save(eng, b, names, b.out / "bin" / "images.tar")
    return {"source": "the Flux controllers, the Flux Operator, podinfo and the registry from the toolchain's "
                      "builds; " + "; ".join(f"{k}: {v}" for k, v in notes.items()),
            "images": names, "by_digest": by_digest,
            "groups": groups(flux, operator, by_digest, charts, loaded, registry, client)}


def groups(flux, operator, by_digest, charts, loaded, registry, client) -> dict[str, list[str]]:
    """Which images run where, so the tier loads into a cluster's nodes only
    what that cluster can run: ``flux`` (bootstrap's controllers),
    ``operator`` (the operator and every controller it installs, some of
    them bootstrap's images too), ``charts`` (what the tree's charts run),
    ``client`` (the tier's client pod), ``engine`` (the registry, which runs
    in the tier's Docker engine, never in a node)."""
    def named(made) -> list[str]:
        return [n for image in made for n in (image.name, *image.also)]

    return {"flux": named(flux),
            "operator": sorted(set(named(operator)) | set(by_digest.get("images", {}))),
            "charts": named(charts) + list(loaded), "client": named([client]), "engine": named([registry])}


def flux_images(b: Build) -> list[images.Image]:
    """The controllers the flux CLI installs, as its manifests name them."""
    proc = subprocess.run([str(b.need("flux", "flux")), "install", "--export"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise gomod.BuildError(f"flux install --export: {proc.stderr.strip()[-500:]}")
    out = []
    for match in FLUX_IMAGE.finditer(proc.stdout):
        name, tag = match["name"], match["tag"]
        if name not in b.needs:
            raise gomod.BuildError(f"the flux CLI installs {match[1]}, but tools.kind-images does not need {name}: "
                                   "add it to its needs (and build it)")
        built = json.loads((b.need(name).parent / "tool.json").read_text(encoding="utf-8"))["version"]
        if built != tag:
            raise gomod.BuildError(f"the flux CLI installs {match[1]}, but the toolchain built {name} {built}: "
                                   "the CLI's manifests and the controllers must come from one build")
        program = f"/usr/local/bin/{name}"
        out.append(images.Image(match[1], "static", {program: b.need(name, name)}, entrypoint=[program],
                                user="65534:65534"))
    if not out:
        raise gomod.BuildError("flux install --export names no ghcr.io/fluxcd image")
    return out


def operator_images(b: Build, made: set[str]) -> tuple[list[images.Image], dict]:
    """The Flux Operator as its install.yaml names it, and the controllers
    it installs for the newest Flux of flux.version's minor its data
    carries, as ``OPERATOR_REGISTRY/<component>:<tag>`` (those ``made``
    already, by bootstrap's controllers of the same version, are not made
    twice). Returns the images, and ``images``: ``name:tag`` -> the digest
    the operator pins it by, ``instead``: where a tag holds another version."""
    folder = b.need("flux-operator").parent
    notes: list[str] = []
    install = (folder / "install.yaml").read_text(encoding="utf-8")
    named = OPERATOR_IMAGE.search(install)
    version = json.loads((folder / "tool.json").read_text(encoding="utf-8"))["version"]
    if named is None or named["tag"] != version:
        raise gomod.BuildError(f"the Flux Operator's install.yaml names {named[1] if named else 'no image'}, "
                               f"but the toolchain built the operator {version}")
    # Its release image is built on distroless (Debian's static base), and
    # its preflight check refuses to install Flux unless /etc/os-release
    # names that: the tier's static base is made from the same Debian release.
    suite = b.settings["tools"]["debian-rootfs"]["suite"]
    os_release = b.work / "operator-os-release"
    os_release.write_text(OS_RELEASE.format(version=DEBIAN_RELEASES[suite], suite=suite), encoding="utf-8")
    out = [images.Image(named[1], "static", {"/flux-operator": b.need("flux-operator", "flux-operator"),
                                             "/data": folder / "data", "/etc/os-release": os_release},
                        entrypoint=["/flux-operator"], workdir="/", user="65532:65532")]
    flux = components.operator_flux(folder / "data", components.minor(b.settings["flux"]["version"]))
    by_digest = {}
    for component, (tag, digest) in components.operator_images(folder / "data", flux).items():
        need = f"operator-{component}"
        if need not in b.needs:
            continue  # a component the tree's FluxInstance does not install
        built = json.loads((b.need(need).parent / "tool.json").read_text(encoding="utf-8"))["version"]
        instead = b.settings["tools"][need].get("served_instead") or {}
        if built != tag and (str(instead.get("installed")) != tag or str(instead.get("built")) != built):
            raise gomod.BuildError(f"the Flux Operator {version} installs {component} {tag} for Flux {flux}, but "
                                   f"the toolchain built {need} {built}")
        name = f"{OPERATOR_REGISTRY}/{component}:{tag}"
        by_digest[name] = digest
        if built != tag:
            notes.append(f"{name} holds {component} {built} ({instead.get('why')})")
        if name not in made:
            program = f"/usr/local/bin/{component}"
            out.append(images.Image(name, "static", {program: b.need(need, component)}, entrypoint=[program],
                                    user="65534:65534"))
    return out, {"images": by_digest, "instead": notes}


def podinfo_image(b: Build) -> images.Image:
    """podinfo as its chart asks for it (repository and tag from the chart's values)."""
    chart = next(spec for url, spec in (b.settings.get("charts") or {}).items() if url.endswith("/podinfo"))
    source = gomod.download(chart["module"], chart["module_version"])
    values = yamlload.load((source / chart["path"] / "values.yaml").read_text(encoding="utf-8"))
    name = f"{values['image']['repository']}:{values['image']['tag']}"
    users = b.work / "podinfo-users"
    users.mkdir(exist_ok=True)
    static_passwd = subprocess.run(["tar", "-xOf", str(b.need("debian-rootfs", "static.tar")), "./etc/passwd"],
                                   capture_output=True, text=True, check=True).stdout
    static_group = subprocess.run(["tar", "-xOf", str(b.need("debian-rootfs", "static.tar")), "./etc/group"],
                                  capture_output=True, text=True, check=True).stdout
    (users / "passwd").write_text(static_passwd + "app:x:10001:10001:app:/home/app:/sbin/nologin\n", encoding="utf-8")
    (users / "group").write_text(static_group + "app:x:10001:\n", encoding="utf-8")
    bin_dir = b.need("podinfo")
    # As podinfo's own image: the server and its UI in /home/app, podcli (the
    # chart's probes run it) on PATH, the named user `app`.
    return images.Image(name, "static", {
        "/etc/passwd": users / "passwd", "/etc/group": users / "group",
        "/home/app/podinfo": bin_dir / "podinfo", "/usr/local/bin/podcli": bin_dir / "podcli",
        "/home/app/ui": source / "ui"}, workdir="/home/app", user="app", cmd=["./podinfo"])


def registry_image(b: Build) -> images.Image:
    version = str(b.settings["tools"]["registry"]["version"]).lstrip("v")
    config = b.work / "registry-config.yml"
    config.write_text(REGISTRY_CONFIG, encoding="utf-8")
    return images.Image(f"registry:{version}", "static", {
        "/bin/registry": b.need("registry", "registry"), "/etc/distribution/config.yml": config},
        entrypoint=["/bin/registry"], cmd=["serve", "/etc/distribution/config.yml"])


def prebuilt_folder() -> Path | None:
    folder = os.environ.get(PREBUILT_ENV)
    return Path(folder) if folder else None


def prebuilt_images(eng, b: Build, name: str, spec: dict) -> tuple[list[images.Image], dict]:
    """The images of a prebuilt project: made from its program archive, or
    loaded from image archives in the prebuilt folder."""
    version = chart_pin(spec["chart"], b.root)
    wanted = {program: f"{repository}:{version}" for program, repository in spec["programs"].items()}
    folder = prebuilt_folder()
    if folder is None or not folder.is_dir():
        raise gomod.BuildError(
            f"{name}'s images ({', '.join(wanted.values())}) are made from prebuilt programs: set "
            f"{PREBUILT_ENV} to a folder holding {spec['archive'].format(version=version)} "
            "(or those images, saved with `docker save`)")
    archive = folder / spec["archive"].format(version=version)
    if archive.is_file():
        unpacked = b.work / "prebuilt" / name
        unpacked.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            tar.extractall(unpacked, filter="data")
        made = []
        for program, image in wanted.items():
            binary = next(unpacked.rglob(program), None)
            if binary is None or not binary.is_file():
                raise gomod.BuildError(f"{archive} has no program {program!r}")
            binary.chmod(0o755)
            path = f"/app/cmd/{program}/{program}"
            made.append(images.Image(image, "static", {path: binary}, entrypoint=[path], user="65532:65532"))
        return made, {"source": f"{archive.name} (sha256 {file_digest(archive)})"}
    loaded = []
    for tarball in sorted(folder.glob("*.tar")):
        images.docker(eng, b, "load", "--input", str(tarball), what=f"load {tarball.name}")
        loaded.append(tarball.name)
    missing = [image for image in wanted.values() if eng.run("image", "inspect", image, check=False).returncode != 0]
    if missing:
        raise gomod.BuildError(f"{folder} has neither {archive.name} nor image archives holding "
                               f"{', '.join(missing)}")
    return [], {"source": f"image archives {', '.join(loaded)}", "loaded": list(wanted.values())}
