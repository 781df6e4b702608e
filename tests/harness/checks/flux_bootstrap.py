"""What ``flux bootstrap`` puts on a cluster, and the flags its controllers
run with, worked out offline with the pinned flux CLI and kustomize: the one
answer the API-server check (``harness.apply_order``, which applies it first)
and the ``references`` check (``cluster_inventory``, which resolves against
it) share.

The tree commits ``clusters/<name>/flux-system/gotk-components.yaml`` as a
placeholder, which bootstrap replaces with the components of the Flux that
bootstraps the cluster, and ``flux-system/kustomization.yaml`` patches them
(the multi-tenancy lockdown flags). Here the placeholder is replaced the
same way, in a scratch copy: with ``flux install --export`` of the pinned
CLI, given the flags that shape the install which the bootstrap procedure
in ``snippets/`` passes (``procedures``), and the directory is built with
kustomize. The result is every object bootstrap applies, whole (the
flux-system namespace, the controllers' service accounts, Deployments, CRDs
and roles, and the tree's own files of the directory), which of them the
components brought, and each controller's arguments as the cluster runs
them. Bootstrap also stores the credentials for the cluster's repository in
a Secret: ``--secret-name`` of the procedure's call, or the CLI's default.

A directory that bootstrap could not apply as the cluster needs it (its
kustomization.yaml does not list the components, or its build fails with
them) is a ``failure``, at the tree line to fix; the API-server check
reports it.

Every answer is kept in ``.tools/cache`` (``harness.build_cache``), keyed by
the flux binary, the flags and the bytes it reads.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

import yamlload

from harness import build_cache, tools
from harness.checks import cli_help, kustomize_build, procedures, yaml_docs
from harness.model import Origin

COMPONENTS = "gotk-components.yaml"
# The flags of `flux install` that shape what it installs (the rest only
# change how the CLI talks to a cluster).
INSTALL_FLAGS = ("components", "components-extra", "cluster-domain", "image-pull-secret", "log-level",
                 "network-policy", "registry", "toleration-keys", "watch-all-namespaces", "namespace")
DEFAULT = re.compile(r'^\s+(?:-\w, )?--(?P<flag>[\w-]+) \w+ .*\(default "(?P<value>[^"]*)"\)\s*$', re.M)
_Loader = yamlload.Loader


@dataclass(frozen=True)
class FlagSetting:
    value: str
    where: str  # the tree line that sets it, or what it comes from


@dataclass
class Bootstrap:
    """What bootstrap gives one cluster. ``reason`` says why it is unknown
    (then ``objects`` is empty); ``failure`` is what the cluster's bootstrap
    would run into, at the tree line to fix."""

    # Every object bootstrap applies, whole, in the order of the build, and
    # for each whether ``flux install --export`` wrote it (in place of the
    # placeholder) rather than a file of the tree.
    objects: list[dict] = field(default_factory=list)
    from_components: list[bool] = field(default_factory=list)
    installed_by: str = ""  # for messages
    secret: procedures.Made | None = None
    flags: dict[str, dict[str, FlagSetting]] = field(default_factory=dict)
    reason: str | None = None
    failure: tuple[Origin, str] | None = None

    def components(self) -> list[dict]:
        return [data for data, ours in zip(self.objects, self.from_components) if ours]


def _help_default(command: tuple[str, ...], flag: str) -> str | None:
    for match in DEFAULT.finditer(cli_help.help_text("flux", command)):
        if match.group("flag") == flag:
            return match.group("value")
    return None


def _install_args(call: procedures.BootstrapCall | None) -> list[str]:
    if call is None:
        return []
    return [f"--{name}={value}" for name, value in sorted(call.flags.items()) if name in INSTALL_FLAGS]


def install_text(flux: str, args: tuple[str, ...]) -> str | None:
    """``flux install --export ARGS`` (from the cache when it ran before)."""
    import subprocess

    name = build_cache.key("flux-install", flux, [("args", "\0".join(args).encode())])
    answer = build_cache.get("flux-install", name)
    if answer is not None:
        return answer["text"]
    proc = subprocess.run([flux, "install", "--export", *args], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"})
    if proc.returncode != 0:
        return None
    build_cache.put("flux-install", name, {"text": proc.stdout})
    return proc.stdout


def _bootstrap_call(root: Path) -> procedures.BootstrapCall | None:
    calls = procedures.read(root).bootstraps
    return calls[0] if calls else None


def components_text(root: Path) -> str | None:
    """What bootstrap writes in place of the placeholder gotk-components.yaml
    (``flux install --export`` with the procedure's install flags), or None
    when the flux CLI is missing or fails."""
    root = Path(root).resolve()
    flux = _tool("flux", root)
    if flux is None:
        return None
    return install_text(flux, tuple(_install_args(_bootstrap_call(root))))


def _identity(data: dict) -> tuple[str, str, str, str]:
    meta = data.get("metadata") or {}
    return (str(data.get("apiVersion", "")).rpartition("/")[0], str(data.get("kind")),
            str(meta.get("namespace") or ""), str(meta.get("name")))


def _objects(flux: str, built: str, installed: str) -> tuple[list[dict], list[bool]]:
    """The objects of the build, and which of them the install wrote
    (parsed once, then kept in the cache as JSON, much faster to read)."""
    name = build_cache.key("flux-bootstrap", flux, [("built", built.encode()), ("installed", installed.encode())])
    answer = build_cache.get("flux-bootstrap", name)
    if answer is not None:
        return answer["objects"], answer["from_components"]
    components = {_identity(d) for d in yaml.load_all(installed, Loader=_Loader) if isinstance(d, dict)}
    objects = [d for d in yaml.load_all(built, Loader=_Loader) if isinstance(d, dict) and d.get("kind")]
    ours = [_identity(d) in components for d in objects]
    build_cache.put("flux-bootstrap", name, {"objects": objects, "from_components": ours})
    return objects, ours


def _parse_args(args: list) -> dict[str, str]:
    flags: dict[str, str] = {}
    for arg in args:
        text = str(arg)
        if text.startswith("--"):
            name, eq, value = text[2:].partition("=")
            flags[name] = value if eq else "true"
    return flags


def _where_set(rel: str, lines: list[str], flag: str, installed_by: str) -> str:
    """The line of the cluster's flux-system/kustomization.yaml that sets
    ``flag`` (a patch), or what installs it."""
    for number, line in enumerate(lines):
        if f"--{flag}" in line and not line.lstrip().startswith("#"):
            return f"{rel}:{number + 1}"
    return installed_by


def _resources_line(root: Path, kfile: str) -> Origin:
    """The ``resources`` line of a kustomization file (its first line when
    it has none)."""
    tree_file = yaml_docs.tree(root).get(kfile)
    docs = [d for d in tree_file.docs if isinstance(d.data, dict)] if tree_file is not None else []
    if not docs:
        return Origin(kfile, 1)
    return tree_file.origin(yaml_docs.line_of(docs[0].data, ["resources"], docs[0].line))


@functools.lru_cache(maxsize=16)
def _for_cluster(root: Path, cluster: str, _stamp: tuple, flux: str | None, kustomize: str | None) -> Bootstrap:
    if flux is None or kustomize is None:
        missing = "flux" if flux is None else "kustomize"
        return Bootstrap(reason=f"what bootstrap installs is not known: {tools.missing_reason(missing, root)}")
    call = _bootstrap_call(root)
    args = tuple(_install_args(call))
    text = install_text(flux, args)
    version = tools.pins(root).get("flux", {}).get("version", "")
    installed_by = f"`flux install --export{''.join(' ' + a for a in args)}` of the pinned flux {version}"
    if call is not None:
        installed_by += f", as {call.where} bootstraps"
    if text is None:
        return Bootstrap(reason=f"`flux install --export` of {flux} failed: what bootstrap installs is not known")
    directory = f"{cluster}/flux-system"
    components = f"{directory}/{COMPONENTS}"
    kfile = kustomize_build.kustomization_file(root, directory) or f"{directory}/kustomization.yaml"
    if not (root / components).is_file():
        return Bootstrap(reason=f"{components} is missing (the kustomize-build check reports it)")
    built = kustomize_build.cached_build(root, directory, kustomize, overrides={components: text})
    if built.error is not None:
        message = kustomize_build.describe_error(root, built.error)
        return Bootstrap(reason=f"`kustomize build {directory}` with the components bootstrap writes fails "
                                f"(see [api-server])",
                         failure=(Origin(kfile, 1),
                                  f"with the components `flux install` writes in place of the placeholder "
                                  f"{COMPONENTS}, `kustomize build {directory}` fails, and so would "
                                  f"bootstrap: {message}"))
    objects, ours = _objects(flux, built.text, text)
    if not any(ours):
        return Bootstrap(reason="bootstrap would install no Flux components (see [api-server])", failure=(
            _resources_line(root, kfile),
            f"`resources` does not list {COMPONENTS}: on a fresh cluster `flux bootstrap` installs Flux by "
            f"applying this kustomization.yaml, and `kustomize build {directory}` with the components it "
            f"writes there holds none of them, so the cluster would get no controllers and no CRDs; list "
            f"{COMPONENTS} (the controllers and CRDs) and gotk-sync.yaml (the root source and Kustomization) "
            f"in `resources`"))
    boot = Bootstrap(objects=objects, from_components=ours, installed_by=installed_by)
    tree_file = yaml_docs.tree(root).get(kfile)
    lines = tree_file.raw.split("\n") if tree_file is not None else []
    for obj in boot.components():
        if obj.get("kind") != "Deployment":
            continue
        controller = (obj.get("metadata") or {}).get("name")
        pod = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
        containers = pod.get("containers") or []
        args = _parse_args(containers[0].get("args") or []) if containers else {}
        boot.flags[controller] = {name: FlagSetting(value, _where_set(kfile, lines, name, installed_by))
                                  for name, value in args.items()}
    if call is not None:
        command = call.command
        secret = call.flags.get("secret-name") or _help_default(command, "secret-name")
        namespace = call.flags.get("namespace") or call.flags.get("n") or _help_default(command, "namespace")
        if secret and namespace:
            how = f"runs `flux {' '.join(command)}`, which stores the repository's credentials in it"
            boot.secret = procedures.Made("", "Secret", namespace, secret, call.where, how)
    return boot


def _tool(name: str, root: Path) -> str | None:
    return tools.find(name, root)


def for_cluster(root: Path, cluster: str) -> Bootstrap:
    """What bootstrap gives ``cluster`` (``clusters/<name>``), kept per tree content."""
    root = Path(root).resolve()
    return _for_cluster(root, cluster, yaml_docs.stamp(root), _tool("flux", root), _tool("kustomize", root))
