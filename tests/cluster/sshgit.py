"""A git server over SSH, for the private-fork proof: Debian's OpenSSH server
(``sshd``), run by the tier as a process of its own, serving one bare
repository to one deploy key, the way a private fork on a git host serves
its deploy key and nobody else.

Everything it needs lives in a folder of the run: its host key, its
configuration, ``authorized_keys`` and the repository, a bare clone of the
tier's snapshot (the fork). It listens on a free port of the address the
provider names (loopback on kwok, the kind network's gateway on kind),
accepts public keys only, and only the deploy key it generated. That key
gets a forced command: whatever the client asks, it may only fetch from and
push to the fork, through ``git-shell`` (no shell, no forwarding, no
terminal).

The login user is the user the tier runs as (sshd can only authenticate an
existing account, and a non-root sshd only its own). Run as root, sshd wants
its privilege separation directory, ``/run/sshd``, which the Debian service
creates before it starts it; ``serve`` creates it the same way when it is
missing (an empty root-owned folder, which it leaves in place). ``stop``
ends the server and everything below it; the tier calls it at the end of a
run, after a failure and on Ctrl-C too.
"""

from __future__ import annotations

import getpass
import os
import shlex
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import names, processes

SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd")
PRIVSEP_DIR = Path("/run/sshd")
INSTALL_HINT = "install Debian's openssh-server (`apt-get install openssh-server`; .ci/run does it on CI)"
START_BOUND = 30


class SshServerError(RuntimeError):
    """sshd is missing, or would not start."""


def find_sshd() -> str | None:
    """sshd's absolute path (sshd refuses to run from a relative one)."""
    found = shutil.which("sshd")
    if found:
        return os.path.abspath(found)
    return next((c for c in SSHD_CANDIDATES if os.access(c, os.X_OK)), None)


def missing_tools() -> list[str]:
    """What the server needs and this machine lacks, each with what to do."""
    missing = []
    if find_sshd() is None:
        missing.append(f"sshd not found on PATH or in /usr/sbin: {INSTALL_HINT}")
    for tool in ("ssh", "ssh-keygen", "git-shell"):
        if shutil.which(tool) is None:
            hint = "install git" if tool == "git-shell" else "install openssh-client"
            missing.append(f"{tool} not found on PATH: {hint}")
    return missing


def forced_command(repo_dir: Path) -> str:
    """The program every login of the deploy key runs instead of what it
    asked for: git's fetch or push of the fork (any spelling of its path a
    client may send), through git-shell; anything else is refused."""
    path = names.GIT_REPO_PATH  # /gitops-whitepaper.git
    accepted = " | ".join(
        shlex.quote(f"{verb} {spelling}")
        for verb in ("git-upload-pack", "git-receive-pack")
        for spelling in (f"'{path}'", path, f"'{path.lstrip('/')}'", path.lstrip("/"))
    )
    return f"""#!/bin/sh
# Forced command of the deploy key (written by the docs-test harness):
# fetch from and push to the one repository this server holds, nothing else.
case "$SSH_ORIGINAL_COMMAND" in
  {accepted}) ;;
  *) echo "this key may only fetch from and push to {path}" >&2; exit 1 ;;
esac
cd {shlex.quote(str(repo_dir.parent))} || exit 1
exec git-shell -c "${{SSH_ORIGINAL_COMMAND%% *}} '{repo_dir.name}'"
"""


def sshd_config(folder: Path, bind: str, port: int, user: str) -> str:
    """Public keys only, one user, one authorized_keys file, no forwarding:
    the settings of a git host's SSH endpoint, in the run's folder."""
    return "\n".join([
        "# sshd of the docs-test harness's private-fork proof (one run, one folder).",
        f"ListenAddress {bind}",
        f"Port {port}",
        f"HostKey {folder / 'host_ed25519'}",
        f"PidFile {folder / 'sshd.pid'}",
        f"AuthorizedKeysFile {folder / 'authorized_keys'}",
        # The run's folder sits below /tmp (world-writable), which StrictModes refuses.
        "StrictModes no",
        f"AllowUsers {user}",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
        "UsePAM no",
        "PermitTTY no",
        "AllowTcpForwarding no",
        "AllowAgentForwarding no",
        "AllowStreamLocalForwarding no",
        "X11Forwarding no",
        "PermitTunnel no",
        "PermitUserEnvironment no",
        "PrintMotd no",
        "LogLevel VERBOSE",
        # The key exchange Go's SSH client (Flux's source-controller) offers; OpenSSH's
        # post-quantum default would cost both ends more CPU on every connection.
        "KexAlgorithms curve25519-sha256,curve25519-sha256@libssh.org",
        # sshd runs the forced command through the user's shell, and bash reads the user's
        # ~/.bashrc when sshd starts it as a top-level shell. This machine's (pyenv) started
        # about a hundred processes per connection, and one that prints anything would
        # break git's protocol. Started as a second-level shell, bash skips it.
        "SetEnv SHLVL=1",
        "",
    ])


def free_port(host: str) -> int:
    """A port nothing listens on right now (sshd cannot pick one itself)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def keygen(path: Path, comment: str) -> Path:
    """An ed25519 key pair without a passphrase at ``path`` (and ``.pub``)."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                   check=True, capture_output=True, text=True, timeout=60)
    return path


def git_env(key: Path | str, known_hosts: Path | str) -> dict[str, str]:
    """Environment for the git CLI to use ``key``, trust only the host key in
    ``known_hosts``, and never prompt."""
    ssh = ["ssh", "-F", "/dev/null", "-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
           "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes"]
    return {"GIT_SSH_COMMAND": shlex.join(ssh), "GIT_TERMINAL_PROMPT": "0"}


@dataclass
class SshGitServer:
    """A running server. ``url`` is what the pages' scripts and Flux use."""

    host: str  # the address clients use (the provider's advertised host address)
    port: int
    user: str
    folder: Path
    repo_dir: Path
    deploy_key: Path  # the private half: push rights, as a deploy key with write access
    process: processes.HostProcess | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"ssh://{self.user}@{self.host}:{self.port}{names.GIT_REPO_PATH}"

    @property
    def known_hosts(self) -> Path:
        """A known_hosts file naming the server's host key, for git's ssh."""
        return self.folder / "known_hosts"

    def git_env(self, key: Path | None = None) -> dict[str, str]:
        """Environment for the git CLI to reach the server with ``key``
        (default: the deploy key), checking its host key, never prompting."""
        return git_env(key or self.deploy_key, self.known_hosts)

    def head(self, branch: str = names.DEFAULT_BRANCH) -> str:
        """The commit ``branch`` of the fork points at now (pushes move it)."""
        return subprocess.run(["git", "--git-dir", str(self.repo_dir), "rev-parse", f"refs/heads/{branch}"],
                              check=True, capture_output=True, text=True, timeout=30).stdout.strip()

    def has_commit(self, commit: str) -> bool:
        return subprocess.run(["git", "--git-dir", str(self.repo_dir), "cat-file", "-e", f"{commit}^{{commit}}"],
                              capture_output=True, timeout=30).returncode == 0

    def alive(self) -> bool:
        return self.process is not None and self.process.alive()

    def stop(self) -> None:
        """Stop sshd and every session below it. Safe to call twice."""
        if self.process is not None:
            self.process.stop()
            # A connection's own sshd (re-executed with -R, its command line
            # naming this folder's config) may outlive the listener briefly.
            sessions = processes.processes_with_marker(str(self.folder / "sshd_config"))
            processes.kill_pids(sessions)
            processes.wait_pids_gone(sessions, 10)
            (self.folder / "sshd.pid").unlink(missing_ok=True)

    def __enter__(self) -> "SshGitServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(source: str, folder: Path, bind: str = "127.0.0.1", advertised: str | None = None) -> SshGitServer:
    """Clone ``source`` (a path or URL of the snapshot) bare into ``folder``
    and serve it over SSH on a free port of ``bind``; clients reach it at
    ``advertised`` (default ``bind``). Returns once sshd accepts connections."""
    problems = missing_tools()
    if problems:
        raise SshServerError("the SSH git server cannot start: " + "; ".join(problems))
    sshd = find_sshd()
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    repo_dir = folder / names.GIT_REPO_PATH.strip("/")
    subprocess.run(["git", "clone", "--quiet", "--bare", source, str(repo_dir)], check=True,
                   capture_output=True, text=True, timeout=300, env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
    host_key = keygen(folder / "host_ed25519", "docs-test ssh git server host key")
    deploy_key = keygen(folder / "deploy_ed25519", "docs-test deploy key (push)")
    command = folder / "git-only.sh"
    command.write_text(forced_command(repo_dir), encoding="utf-8")
    command.chmod(0o755)
    public = (folder / "deploy_ed25519.pub").read_text(encoding="utf-8").strip()
    (folder / "authorized_keys").write_text(f'command="{command}",restrict {public}\n', encoding="utf-8")
    user = getpass.getuser()
    host = advertised or bind
    if os.geteuid() == 0 and not PRIVSEP_DIR.is_dir():
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)  # what the Debian service does before starting sshd
    host_public = Path(f"{host_key}.pub").read_text(encoding="utf-8").split()[:2]
    last_error = ""
    for _ in range(3):  # a port found free may be taken before sshd binds it
        port = free_port(bind)
        config = folder / "sshd_config"
        config.write_text(sshd_config(folder, bind, port, user), encoding="utf-8")
        checked = subprocess.run([sshd, "-t", "-f", str(config)], capture_output=True, text=True, timeout=30)
        if checked.returncode != 0:
            raise SshServerError(f"sshd refuses the configuration {config}: {checked.stderr.strip()}")
        process = processes.start("sshd", [sshd, "-D", "-e", "-f", str(config)], folder / "sshd.log",
                                  {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C"}, cwd=folder)
        try:
            _wait_listening(bind, port, process)
        except (RuntimeError, TimeoutError) as error:
            process.stop()
            last_error = str(error)
            continue
        (folder / "known_hosts").write_text(f"[{host}]:{port} {' '.join(host_public)}\n", encoding="utf-8")
        return SshGitServer(host, port, user, folder, repo_dir, deploy_key, process)
    raise SshServerError(f"sshd did not start: {last_error}")


def _wait_listening(host: str, port: int, process: processes.HostProcess) -> None:
    deadline = time.monotonic() + START_BOUND
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            sock.settimeout(0.2)
            if sock.connect_ex((host, port)) == 0:
                return
        if not process.alive():
            raise RuntimeError(f"sshd exited before listening on {host}:{port}: {process.tail()}")
        time.sleep(0.02)  # sshd listens within a few hundredths of a second
    raise TimeoutError(f"sshd did not listen on {host}:{port} within {START_BOUND}s: {process.tail()}")
