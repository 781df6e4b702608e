"""What the image builders share: a Docker engine to build with (the user's,
or the tier's own dockerd, started for the build and stopped after it), the
Debian bases as images, and one small ``docker build`` per image.

Every image is made with the classic builder from a context this module
writes (a Dockerfile and the files it copies), ``FROM`` a base imported from
the ``debian-rootfs`` recipe or ``scratch``: nothing is pulled.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import docker_engine

from .. import gomod
from ..recipes import Build

# Local names of the bases; never pushed anywhere.
BASE = "gwp.local/base-{root}:{key}"
# Where a program goes in the images made for it.
PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@contextlib.contextmanager
def engine():
    """A Docker engine for the build; one the build started is stopped after it."""
    try:
        found = docker_engine.find()
    except docker_engine.EngineUnavailable as error:
        raise gomod.BuildError(f"the kind tier's images are built with Docker: {error}") from None
    try:
        yield found
    finally:
        found.stop()


def docker(eng, b: Build, *args: str, what: str, stdin=None) -> str:
    """Run ``docker ARGS`` on ``eng``, logging to the build log."""
    with open(b.log, "a", encoding="utf-8") as log:
        log.write(f"$ docker {' '.join(args)}\n")
    try:
        proc = eng.run(*args, check=False, stdin=stdin, timeout=1800)
    except Exception as error:  # noqa: BLE001 - reported as the build step that failed
        raise gomod.BuildError(f"{what}: {error}") from None
    with open(b.log, "a", encoding="utf-8") as log:
        log.write((proc.stdout or "") + (proc.stderr or "") + "\n")
    if proc.returncode != 0:
        tail = "\n    ".join(((proc.stderr or "") + (proc.stdout or "")).strip().splitlines()[-12:])
        raise gomod.BuildError(f"{what}: docker {' '.join(args[:2])} ... exited {proc.returncode}:\n    {tail}")
    return proc.stdout


def import_bases(eng, b: Build, rootfs: Path, key: str, roots=("iptables", "static")) -> dict[str, str]:
    """``docker import`` of the debian-rootfs recipe's roots; returns root -> image."""
    out = {}
    for root in roots:
        name = BASE.format(root=root, key=key)
        if eng.run("image", "inspect", name, check=False).returncode != 0:
            with open(rootfs / f"{root}.tar", "rb") as tarball:
                docker(eng, b, "import", "--change", f"ENV PATH={PATH_ENV}", "-", name, what=f"import the {root} base",
                       stdin=tarball)
        out[root] = name
    return out


@dataclass
class Image:
    """One image: its name, what it is made from, where its files go."""

    name: str  # registry.k8s.io/kube-apiserver:v1.35.4
    base: str  # an imported base, or "scratch"
    files: dict[str, Path] = field(default_factory=dict)  # path in the image -> file or folder on the host
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    user: str | None = None
    workdir: str | None = None
    run: list[str] = field(default_factory=list)  # shell commands after the copies (needs a shell in the base)
    also: list[str] = field(default_factory=list)  # further names for the same image
    stop_signal: str | None = None

    def dockerfile(self) -> str:
        import json

        lines = [f"FROM {self.base}"]
        if self.base == "scratch":
            lines.append(f"ENV PATH={PATH_ENV}")
        for index, target in enumerate(self.files):
            lines.append(f"COPY f{index} {target}")
        lines += [f"RUN {command}" for command in self.run]
        if self.workdir:
            lines.append(f"WORKDIR {self.workdir}")
        if self.user:
            lines.append(f"USER {self.user}")
        if self.entrypoint is not None:
            lines.append(f"ENTRYPOINT {json.dumps(self.entrypoint)}")
        if self.cmd is not None:
            lines.append(f"CMD {json.dumps(self.cmd)}")
        if self.stop_signal:
            lines.append(f"STOPSIGNAL {self.stop_signal}")
        return "\n".join(lines) + "\n"


def build_image(eng, b: Build, image: Image) -> None:
    context = b.work / "contexts" / image.name.replace("/", "_").replace(":", "_")
    shutil.rmtree(context, ignore_errors=True)
    context.mkdir(parents=True)
    for index, source in enumerate(image.files.values()):
        target = context / f"f{index}"
        if source.is_dir():
            shutil.copytree(source, target, symlinks=True)
        else:
            shutil.copy2(source, target)
            os.chmod(target, 0o755 if os.access(source, os.X_OK) else 0o644)
    (context / "Dockerfile").write_text(image.dockerfile(), encoding="utf-8")
    tags = [arg for name in (image.name, *image.also) for arg in ("--tag", name)]
    docker(eng, b, "build", "--quiet", "--no-cache", *tags, str(context), what=f"build {image.name}")


def save(eng, b: Build, names: list[str], tarball: Path) -> None:
    docker(eng, b, "save", "--output", str(tarball), *names, what=f"save {len(names)} images")
