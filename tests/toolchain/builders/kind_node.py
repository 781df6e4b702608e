"""The kind tier's node image, made the way ``kind build node-image`` makes
one, without pulling anything (kind's own command always pulls etcd,
CoreDNS, pause and its CNI and storage images).

1. The ``node`` root from the debian-rootfs recipe becomes kind's base
   image: the files of kind's ``images/base/files`` (from the kind module, at
   the version ``tools.kind`` pins) and the steps of kind's base Dockerfile,
   with Debian's containerd, runc and CNI plugins in place of the versions
   kind compiles.
2. kubelet, kubeadm, kubectl and crictl go in, with kind's ``/kind/version`` and
   default storage manifest (kind's own, from its module, naming the
   local-path images built here).
3. Every image kubeadm and kind start is built here from the binaries of
   the recipes it needs, under the name and tag kubeadm asks for
   (``registry.k8s.io/kube-apiserver:v1.35.4``, ``etcd:3.6.6-0``, ...), and
   imported into the node's containerd with ``ctr images import``, as kind
   does, by a containerd run on the host against the node's root.
4. The root is imported as the image ``gwp.local/kind-node:<key>`` and saved to
   ``bin/node-image.tar``.

Two settings differ from kind's own image: containerd's sandbox image is the
pause tag kubeadm names (kind's config names an older one it also ships), and
``restrict_oom_score_adj`` is on, because on machines whose capability
bounding set lacks CAP_SYS_RESOURCE runc cannot lower a pod's OOM score
(kind turns it on for rootless nodes for the same reason).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

from .. import gomod
from ..recipes import Build, Tool
from . import images

NODE = "gwp.local/kind-node:{key}"
LOCAL = "gwp.local"  # the images only this tier's node manifests name
KIND_BASE_STEPS = """
find /lib/systemd/system/sysinit.target.wants/ -name systemd-tmpfiles-setup.service -delete
rm -f /lib/systemd/system/multi-user.target.wants/* /etc/systemd/system/*.wants/* \
  /lib/systemd/system/local-fs.target.wants/* /lib/systemd/system/sockets.target.wants/*udev* \
  /lib/systemd/system/sockets.target.wants/*initctl* /lib/systemd/system/basic.target.wants/*
echo ReadKMsg=no >> /etc/systemd/journald.conf
ln -sf /usr/lib/systemd/systemd /sbin/init
systemctl enable kubelet.service containerd.service undo-mount-hacks.service
systemctl mask systemd-binfmt.service
mkdir -p /etc/kubernetes/manifests /kind/manifests
"""


def build(tool: Tool, b: Build) -> dict:
    kind_version = str(b.settings["tools"]["kind"]["version"])
    kind_source = gomod.download(tool.module, kind_version)
    kubernetes = b.settings["tools"]["kubernetes-node"]
    k8s_version = str(kubernetes["version"])
    root = b.work / "root"
    unpack(b.need("debian-rootfs", "node.tar"), root, b)
    base_files(kind_source / "images" / "base" / "files", root)
    chroot(root, KIND_BASE_STEPS, b)
    spec = json.loads(subprocess.run(["chroot", str(root), "ctr", "oci", "spec"], capture_output=True, text=True,
                                     check=True).stdout)
    spec.setdefault("hooks", {}).setdefault("createContainer", []).append({"path": "/kind/bin/mount-product-files.sh"})
    spec.get("process", {}).pop("rlimits", None)
    (root / "etc" / "containerd" / "cri-base.json").write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
    for binary, tool_name in (("kubelet", "kubernetes-node"), ("kubeadm", "kubernetes-node"), ("kubectl", "kubernetes")):
        shutil.copy2(b.need(tool_name, binary), root / "usr" / "bin" / binary)
    shutil.copy2(b.need("crictl", "crictl"), root / "usr" / "local" / "bin" / "crictl")
    (root / "kind" / "version").write_text(k8s_version, encoding="utf-8")

    with images.engine() as eng:
        bases = images.import_bases(eng, b, b.need("debian-rootfs"), tool.version)
        pause = build_pause(b, k8s_version)
        wanted = node_images(b, bases, pause, k8s_version, tool.version)
        for image in wanted:
            images.build_image(eng, b, image)
        names = [n for image in wanted for n in (image.name, *image.also)]
        images.save(eng, b, names, b.work / "images.tar")
        configure_containerd(root, pause_tag(wanted))
        storage = storage_manifest(kind_source, provisioner=wanted[-2].name, helper=wanted[-1].name)
        (root / "kind" / "manifests" / "default-storage.yaml").write_text(storage, encoding="utf-8")
        (root / "kind" / "manifests" / "default-cni.yaml").write_text(
            "# This node image has no CNI manifest: the cluster tier writes a static CNI configuration into\n"
            "# each node (kind's kindnetd is not built here). Create clusters with disableDefaultCNI: true.\n",
            encoding="utf-8")
        side_load(root, b.work / "images.tar", b)
        name = NODE.format(key=tool.version)
        with subprocess.Popen(["tar", "-C", str(root), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE) as tar:
            images.docker(eng, b, "import", "--change", "ENV container=docker",
                          "--change", 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]',
                          "--change", 'ENV HTTP_PROXY="" HTTPS_PROXY="" NO_PROXY=""',
                          "-", name + "-raw", what="import the node's root", stdin=tar.stdout)
        images.build_image(eng, b, images.Image(name, name + "-raw", stop_signal="SIGRTMIN+3"))
        images.docker(eng, b, "rmi", name + "-raw", what="drop the raw import")
        images.save(eng, b, [name], b.out / "bin" / "node-image.tar")
    return {"source": f"kind {kind_version}'s base files and node-image steps over a Debian root; "
                      f"Kubernetes {k8s_version}",
            "image": name, "side_loaded": names}


def unpack(tarball: Path, root: Path, b: Build) -> None:
    root.mkdir(parents=True)
    subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-xf", str(tarball)], check=True)


def base_files(files: Path, root: Path) -> None:
    """kind's images/base/files, with the modes its Dockerfile gives them."""
    for source in files.rglob("*"):
        if source.is_dir():
            continue
        rel = source.relative_to(files)
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        executable = rel.parts[0] == "usr" or (len(rel.parts) > 1 and rel.parts[:2] == ("kind", "bin"))
        target.chmod(0o755 if executable else 0o644)
    for folder in (root / "kind", root / "kind" / "bin"):
        folder.chmod(0o755)
    # Debian installs containerd in /usr/bin; kind's unit runs /usr/local/bin/containerd.
    link = root / "usr" / "local" / "bin" / "containerd"
    link.unlink(missing_ok=True)
    link.symlink_to("/usr/bin/containerd")
    # The CNI plugins where kubelet's containerd looks for them.
    cni = root / "opt" / "cni" / "bin"
    cni.mkdir(parents=True, exist_ok=True)
    for plugin in (root / "usr" / "lib" / "cni").iterdir():
        shutil.copy2(plugin, cni / plugin.name)


def chroot(root: Path, script: str, b: Build) -> None:
    with open(b.log, "a", encoding="utf-8") as log:
        log.write(f"$ chroot {root} bash -euxc ...\n")
        proc = subprocess.run(["chroot", str(root), "bash", "-euxc", script], stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise gomod.BuildError(f"kind's base steps failed in the node's root; see {b.log}")


def build_pause(b: Build, k8s_version: str) -> tuple[Path, str]:
    """pause from the kubernetes module's build/pause, compiled as its
    Makefile does (static); returns (binary, its tag)."""
    source = gomod.download("k8s.io/kubernetes", k8s_version) / "build" / "pause"
    tag = re.search(r"^TAG \?= (\S+)", (source / "Makefile").read_text(), re.M).group(1)
    out = b.work / "pause"
    gcc = shutil.which("gcc")
    if gcc is None:
        raise gomod.BuildError("pause is compiled with gcc (Debian: build-essential)")
    proc = subprocess.run([gcc, "-Os", "-Wall", "-Werror", "-static", f"-DVERSION=v{tag}-{k8s_version}", "-o", str(out),
                           str(source / "linux" / "pause.c")], capture_output=True, text=True)
    if proc.returncode != 0:
        raise gomod.BuildError(f"gcc of pause.c: {proc.stderr.strip()[-800:]}")
    return out, tag


def node_images(b: Build, bases: dict, pause: tuple[Path, str], k8s: str, key: str) -> list[images.Image]:
    """The images a kubeadm cluster of kind starts, under kubeadm's names."""
    control = b.need("kubernetes")
    node = b.need("kubernetes-node")
    etcd_version = str(b.settings["tools"]["node-etcd"]["version"]).lstrip("v")
    coredns_version = str(b.settings["tools"]["coredns"]["version"])
    lpp_version = str(b.settings["tools"]["local-path-provisioner"]["version"])
    program = "/usr/local/bin/{}"
    out = [images.Image(f"registry.k8s.io/{name}:{k8s}", bases["static"], {program.format(name): control / name},
                        entrypoint=[program.format(name)])
           for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler")]
    out.append(images.Image(f"registry.k8s.io/kube-proxy:{k8s}", bases["iptables"],
                            {program.format("kube-proxy"): node / "kube-proxy"}, entrypoint=[program.format("kube-proxy")]))
    out.append(images.Image(f"registry.k8s.io/etcd:{etcd_version}-0", bases["static"],
                            {program.format("etcd"): b.need("node-etcd", "etcd")}, entrypoint=[program.format("etcd")]))
    # CoreDNS runs as root here: its own image runs it as a non-root user with
    # a file capability to bind port 53, which a copied file does not keep;
    # kubeadm's Deployment adds that capability and drops every other.
    out.append(images.Image(f"registry.k8s.io/coredns/coredns:{coredns_version}", bases["static"],
                            {"/coredns": b.need("coredns", "coredns")}, entrypoint=["/coredns"]))
    out.append(images.Image(f"registry.k8s.io/pause:{pause[1]}", "scratch", {"/pause": pause[0]},
                            entrypoint=["/pause"], user="65535:65535"))
    out.append(images.Image(f"{LOCAL}/local-path-provisioner:{lpp_version}", bases["static"],
                            {program.format("local-path-provisioner"): b.need("local-path-provisioner",
                                                                               "local-path-provisioner")},
                            entrypoint=[program.format("local-path-provisioner")]))
    # The helper pod runs a shell script (mkdir, rm): the iptables root has a shell.
    out.append(images.Image(f"{LOCAL}/local-path-helper:{key}", bases["iptables"]))
    return out


def pause_tag(wanted: list[images.Image]) -> str:
    return next(i.name for i in wanted if i.name.startswith("registry.k8s.io/pause:"))


def configure_containerd(root: Path, pause: str) -> None:
    config = root / "etc" / "containerd" / "config.toml"
    text = config.read_text(encoding="utf-8")
    text = re.sub(r'sandbox_image = "[^"]*"', f'sandbox_image = "{pause}"', text)
    text = text.replace("restrict_oom_score_adj = false", "restrict_oom_score_adj = true")
    if f'sandbox_image = "{pause}"' not in text or "restrict_oom_score_adj = true" not in text:
        raise gomod.BuildError("kind's containerd config changed shape: sandbox_image or restrict_oom_score_adj "
                               "not found in images/base/files/etc/containerd/config.toml")
    config.write_text(text, encoding="utf-8")


def storage_manifest(kind_source: Path, provisioner: str, helper: str) -> str:
    """kind's default storage manifest (a Go constant in its node-image
    builder), naming the local-path images built here."""
    go = (kind_source / "pkg" / "build" / "nodeimage" / "const_storage.go").read_text(encoding="utf-8")
    match = re.search(r"const defaultStorageManifest = `(.*?\n)`[ \t]*$", go, re.S | re.M)
    if match is None:
        raise gomod.BuildError("kind's const_storage.go has no defaultStorageManifest constant any more")
    text = match.group(1)
    text = text.replace("` + storageProvisionerImage + `", provisioner).replace("` + storageHelperImage + `", helper)
    if "`" in text or provisioner not in text or helper not in text:
        raise gomod.BuildError("kind's default storage manifest changed shape: its image names were not found")
    return text


def side_load(root: Path, tarball: Path, b: Build) -> None:
    """``ctr images import`` into the node's containerd store, by a containerd
    run on the host against the node's /var/lib/containerd."""
    containerd = shutil.which("containerd")
    ctr = shutil.which("ctr")
    if containerd is None or ctr is None:
        raise gomod.BuildError("the node's images are imported with containerd and ctr (Debian: containerd)")
    state = b.work / "containerd-state"
    socket = state / "containerd.sock"
    config = b.work / "containerd.toml"
    config.write_text(f'version = 2\nroot = "{root}/var/lib/containerd"\nstate = "{state}"\n'
                      f'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "{socket}"\n',
                      encoding="utf-8")
    with open(b.log, "a", encoding="utf-8") as log:
        daemon = subprocess.Popen([containerd, "--config", str(config)], stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not socket.exists():
            if time.monotonic() > deadline or daemon.poll() is not None:
                raise gomod.BuildError(f"containerd for the side-load did not start; see {b.log}")
            time.sleep(0.2)
        proc = subprocess.run([ctr, f"--address={socket}", "--namespace=k8s.io", "images", "import",
                               "--label=io.cri-containerd.pinned=pinned", "--all-platforms", "--no-unpack", "--digests",
                               str(tarball)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise gomod.BuildError(f"ctr images import: {proc.stderr.strip()[-800:]}")
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
