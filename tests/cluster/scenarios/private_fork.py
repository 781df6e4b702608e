"""Proof: a private fork. A cluster is bootstrapped the way the walkthrough
tells a reader whose copy of the repository is private (docs/example/kind.md,
"Tell the clusters where the repository is" and "Bootstrap Flux", plain git
server over SSH): ``PLATFORM_GIT_URL`` is an ``ssh://`` URL, a deploy key
with push rights is in ``GIT_PRIVATE_KEY_FILE``, and the reader runs
``snippets/cluster-vars.sh`` and then ``snippets/flux-bootstrap.sh``.

The fork is a bare clone of the tier's snapshot served by an SSH git server
of the run (``cluster.sshgit``: Debian's sshd, public keys only, one deploy
key that may only fetch and push). The cluster, made for this proof and
deleted once it has passed, is bootstrapped from ``clusters/development``:
development's ``platform`` source reads the same repository with bootstrap's
secret, so it shows whether the key reaches every source that needs it.

What it asserts: every Kustomization and HelmRelease is Ready; both git
sources read the fork's ``ssh://`` URL and hold the commit bootstrap pushed
to the fork over SSH (a commit the tier's HTTP snapshot does not have, so
nothing was read from there); the ``flux-system`` secret holds the deploy key
and the fork's host key, and no password.
"""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

from .. import names, sshgit, status
from ..plan import GATEWAY, SSH_PORT, Step
from ..providers import FLUX_NAMESPACE
from . import READY_BOUND

TARGET = names.PRIVATE_FORK
# The directory the fork's cluster follows (and the cluster_name it gets).
DIRECTORY = "development"
GIT_SOURCES = ("flux-system", "platform")
SECRET_KEYS = {"identity", "identity.pub", "known_hosts"}


def start_fork(env) -> sshgit.SshGitServer | None:
    """The SSH git server of the run, serving a bare clone of the snapshot
    (once; stopped at close even if the proof fails)."""
    return env.once("ssh git server", lambda: _start_fork(env))


def _start_fork(env) -> sshgit.SshGitServer | None:
    endpoints = env.ensure_endpoints()
    bind, advertised = env.provider.host_address(env.runner)
    folder = Path(env.work) / "private-fork"
    made: list[sshgit.SshGitServer] = []
    step = Step(["sshd (openssh-server) on", f"{bind}:{SSH_PORT}", "serving a bare clone of", endpoints.git_url,
                 "to one deploy key"],
                note="the private fork: an SSH git server of the run (cluster/sshgit.py)", in_process=True)

    def start() -> None:
        made.append(sshgit.serve(endpoints.git_url, folder, bind=bind, advertised=advertised))
        env.on_close(made[0].stop)

    env.runner.call(step, start)
    return made[0] if made else None


def fork_url(env, fork: sshgit.SshGitServer | None) -> str:
    if fork is not None:
        return fork.url
    host = GATEWAY if env.provider.name == "kind" else "127.0.0.1"
    return f"ssh://$USER@{host}:{SSH_PORT}{names.GIT_REPO_PATH}"


def reader_env(env, fork, cluster) -> dict[str, str]:
    """What a reader with a private fork exports (the walkthrough's exports,
    with the fork's ssh:// URL and the deploy key instead of a password)."""
    from .doc_blocks import exports

    values = {k: v for k, v in exports(env).items() if k != "GIT_PASSWORD"}
    values["PLATFORM_GIT_URL"] = fork_url(env, fork)
    folder = Path(env.work) / "private-fork"
    values["GIT_PRIVATE_KEY_FILE"] = str(fork.deploy_key if fork else folder / "deploy_ed25519")
    home = Path(env.work) / "home-private-fork"
    if env.live:
        home.mkdir(parents=True, exist_ok=True)
    return {**values, "HOME": str(home), "PATH": env.tool_path(), "KUBECTL": env.tool("kubectl"),
            "FLUX": env.tool("flux"), "KUBECONFIG": cluster.kubeconfig,
            **(fork.git_env() if fork else sshgit.git_env(folder / "deploy_ed25519", folder / "known_hosts"))}


KEY = "private-fork"


def start_ahead(env) -> None:
    """Run the proof in the background once the long-lived clusters are
    made (``Provider.proofs_ahead``), yielding the cores to the tests in the
    foreground; ``proof`` then waits for it."""
    env.ahead_proof(KEY, lambda: run(env), after=names.LONG_LIVED, yielding=True)


def proof(env) -> None:
    """The proof: its result if ``start_ahead`` started it, or a run now."""
    env.proof_result(KEY, lambda: run(env))


def run(env) -> None:
    fork = start_fork(env)
    cluster = env.bare_cluster(TARGET)
    variables = reader_env(env, fork, cluster)
    # The reader's clone of the fork, over SSH with the deploy key.
    clone = Path(env.work) / "clone-private-fork"
    env.runner.run(Step(["git", "clone", "--quiet", variables["PLATFORM_GIT_URL"], str(clone)],
                        env={k: v for k, v in variables.items() if k.startswith("GIT_")},
                        note="clone the private fork over SSH with the deploy key", timeout=120))
    env.runner.run(Step(["bash", "snippets/cluster-vars.sh", DIRECTORY, "--context", cluster.context],
                        note=f"{TARGET}: cluster variables with the fork's ssh:// URL (snippets/cluster-vars.sh)",
                        env=variables, cwd=str(clone), context=cluster.context, kubeconfig=cluster.kubeconfig,
                        timeout=120))
    env.provider.install_flux_with(cluster, env.runner, Step(
        ["bash", "snippets/flux-bootstrap.sh", DIRECTORY, "--context", cluster.context,
         "--url", variables["PLATFORM_GIT_URL"]],
        note=f"{TARGET}: bootstrap over SSH with the deploy key in GIT_PRIVATE_KEY_FILE (snippets/flux-bootstrap.sh)",
        env=variables, cwd=str(clone), context=cluster.context, kubeconfig=cluster.kubeconfig, timeout=900))
    status.wait_all_ready(env, cluster, READY_BOUND)
    sources = {name: status.get_json(cluster, env.runner, env.tool("kubectl"),
                                     f"gitrepositories.source.toolkit.fluxcd.io/{name}", "-n", FLUX_NAMESPACE)
               for name in GIT_SOURCES}
    secret = status.get_json(cluster, env.runner, env.tool("kubectl"), "secret/flux-system", "-n", FLUX_NAMESPACE)
    if env.live:
        problems = check(fork, sources, secret, env.git.repo_dir if env.git else None)
        assert not problems, (f"{TARGET} (clusters/{DIRECTORY} bootstrapped over SSH from a private fork):\n  "
                              + "\n  ".join(problems)
                              + "\nsee docs/example/kind.md, Bootstrap Flux (plain git server over SSH)")
    env.delete_cluster(TARGET)


def check(fork: sshgit.SshGitServer, sources: dict[str, dict], secret: dict, snapshot: Path | None) -> list[str]:
    """What is wrong with the cluster's view of the fork (empty: nothing)."""
    problems = []
    head = fork.head()
    for name, source in sources.items():
        url = source.get("spec", {}).get("url")
        revision = source.get("status", {}).get("artifact", {}).get("revision", "")
        if url != fork.url:
            problems.append(f"GitRepository {name} reads {url}, not the fork {fork.url}")
        if revision != f"{names.DEFAULT_BRANCH}@sha1:{head}":
            problems.append(f"GitRepository {name} holds {revision or 'no artifact'}, not the fork's "
                            f"{names.DEFAULT_BRANCH}@sha1:{head} (bootstrap's commit)")
    if snapshot is not None and _has_commit(snapshot, head):
        problems.append(f"the fork's head {head} is also in the HTTP snapshot: bootstrap's commit was not "
                        "pushed to the fork over SSH")
    data = secret.get("data", {})
    if set(data) != SECRET_KEYS:
        problems.append(f"secret flux-system holds {sorted(data)}, expected {sorted(SECRET_KEYS)} (a deploy key, "
                        "no password)")
    elif base64.b64decode(data["identity"]).strip() != fork.deploy_key.read_bytes().strip():
        problems.append("secret flux-system does not hold the deploy key from GIT_PRIVATE_KEY_FILE")
    elif f":{fork.port} " not in base64.b64decode(data["known_hosts"]).decode(errors="replace"):
        problems.append("secret flux-system's known_hosts does not name the fork's SSH server")
    return problems


def _has_commit(repo_dir: Path, commit: str) -> bool:
    return subprocess.run(["git", "--git-dir", str(repo_dir), "cat-file", "-e", f"{commit}^{{commit}}"],
                          capture_output=True, timeout=30).returncode == 0
