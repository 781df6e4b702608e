"""Root file systems made from Debian's packages with debootstrap: the bases
of every image the kind tier builds (its node image, and the images of
programs that need more than a static binary), so that no image is ever
pulled from a container registry.

Each root of the recipe (versions.yaml ``tools.debian-rootfs.roots``) is a
``debootstrap --variant=minbase`` of the recipe's suite with the packages it
lists, from the Debian mirror this machine's apt uses (or
``$GWP_DEBIAN_MIRROR``), packed as ``bin/<root>.tar``. A ``static`` root is
made as well: only what a static Go program expects to find (users, CA
certificates, a writable /tmp), like a distroless base. Needs root.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from .. import gomod
from ..recipes import Build, Tool

SOURCES = (Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.sources")),
           *sorted(Path("/etc/apt/sources.list.d").glob("*.list")))
PASSWD = ("root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
          "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")
GROUP = "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n"


def mirror() -> str:
    """The Debian mirror to bootstrap from: $GWP_DEBIAN_MIRROR, else the
    first Debian archive URI the machine's apt sources name."""
    explicit = os.environ.get("GWP_DEBIAN_MIRROR")
    if explicit:
        return explicit
    for path in SOURCES:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            continue
        for uri in re.findall(r"^\s*(?:URIs:\s*|deb\s+(?:\[[^]]*\]\s+)?)(\S+)", text, re.M):
            if "security" not in uri and "debian" in uri:
                return uri
    raise gomod.BuildError("no Debian mirror found in the apt sources: set GWP_DEBIAN_MIRROR to one")


def run(args: list[str], b: Build, what: str) -> str:
    with open(b.log, "a", encoding="utf-8") as log:
        log.write(f"$ {' '.join(args)}\n")
        proc = subprocess.run(args, stdout=log, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise gomod.BuildError(f"{what}: `{' '.join(args[:3])} ...` exited {proc.returncode}; see {b.log}")
    return ""


def build(tool: Tool, b: Build) -> dict:
    if os.geteuid() != 0:
        raise gomod.BuildError("debootstrap needs root: run `nox -s tools -- --tier kind` as root")
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise gomod.BuildError("debootstrap is not installed (Debian: apt-get install debootstrap)")
    try:
        return bootstrap(tool, b)
    finally:
        # debootstrap mounts /proc and /sys in a root; an interrupted one leaves them.
        for mount in reversed([line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
                               if line.split()[4].startswith(str(b.work) + "/")]):
            subprocess.run(["umount", "-l", mount], capture_output=True)


def bootstrap(tool: Tool, b: Build) -> dict:
    debootstrap = shutil.which("debootstrap")
    suite = str(tool.extra["suite"])
    source = mirror()
    packages: dict[str, list[str]] = {}
    for name, include in tool.extra["roots"].items():
        root = b.work / name
        run([debootstrap, "--variant=minbase", f"--include={','.join(include)}", "--components=main", suite,
             str(root), source], b, f"debootstrap of the {name} root ({suite})")
        listing = subprocess.run(["chroot", str(root), "dpkg-query", "-W", "-f", "${Package}=${Version}\\n"],
                                 capture_output=True, text=True, check=True).stdout.split()
        packages[name] = listing
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists", "var/log", "usr/share/doc", "usr/share/man",
                         "usr/share/locale", "tmp"):
            target = root / leftover
            if target.is_dir():
                for child in target.iterdir():
                    shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        (root / "etc" / "machine-id").write_text("", encoding="utf-8")
        pack(root, b.out / "bin" / f"{name}.tar", b)
    static = b.work / "static"
    for folder in ("etc/ssl/certs", "tmp", "home/nonroot", "root", "var/run"):
        (static / folder).mkdir(parents=True, exist_ok=True)
    (static / "tmp").chmod(0o1777)
    (static / "etc" / "passwd").write_text(PASSWD, encoding="utf-8")
    (static / "etc" / "group").write_text(GROUP, encoding="utf-8")
    (static / "etc" / "nsswitch.conf").write_text("hosts: files dns\n", encoding="utf-8")
    first = b.work / next(iter(tool.extra["roots"]))
    shutil.copy(first / "etc" / "ssl" / "certs" / "ca-certificates.crt", static / "etc" / "ssl" / "certs")
    pack(static, b.out / "bin" / "static.tar", b)
    return {"source": f"debootstrap --variant=minbase {suite} from {source}", "packages": packages}


def pack(root: Path, tarball: Path, b: Build) -> None:
    run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(tarball), "."], b, f"tar of {root.name}")
