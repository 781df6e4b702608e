"""One real etcd and kube-apiserver for the offline tier, shared by a run.

The API-server check (``harness.checks.api_server``) sends the tree's objects
to the real thing rather than to a model of it: the toolchain's etcd and
kube-apiserver (``versions.yaml`` ``tools.etcd``, ``tools.kubernetes``), run as
processes with no controller and no node. Everything they need is made per
run in a temporary folder (``gwp-apiserver-<pid>-*``): the etcd data, the
service-account signing key, a token for the harness's client (a member of
``system:masters``) and the serving certificate the API server makes for
itself. Both bind 127.0.0.1 only, on ports the operating system picks (never
the kwok tier's 21000-26000).

One process of a run owns the server (``Owner``): the pytest controller, or
the only process with ``-n 0``. It starts it in the background, as early as
the run knows it will be wanted, or when a worker asks for it (a ``wanted``
file in the folder), and stops it and removes the folder when the run ends,
after a failure or Ctrl-C too. The processes are started with the parent-death
signal set, so that even a killed run leaves no etcd or kube-apiserver
behind; a folder left by a killed run is removed by the next run. Every
process uses it through ``connect(folder)``; a cluster's objects are sent
while holding the folder's lock (``exclusive``), one cluster at a time.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import fcntl
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from harness import build_cache, tools
from harness.model import PROJECT_ROOT

BINARIES = ("kube-apiserver", "etcd")
BUILD_COMMAND = "nox -s tools -- kubernetes etcd"
PREFIX = "gwp-apiserver-"
READY_TIMEOUT = 90.0
# The kwok tier's ports; nothing here may bind them.
KWOK_PORTS = range(21000, 26001)
# What a worker waits for the owner's server, at most.
CONNECT_TIMEOUT = READY_TIMEOUT + 30.0
SERVER_FILE, FAILED_FILE, WANTED_FILE, LOCK_FILE, PIDS_FILE = "server.json", "failed", "wanted", "lock", "pids"
TOKEN_USER = "docs-test"
CACHE_TOOL = "apiserver"  # .tools/cache/apiserver: the check's answers, and what each run needed


class Unavailable(Exception):
    """The server cannot be had; the message says why and what to do."""


def missing_reason(root: Path = PROJECT_ROOT) -> str | None:
    """Why the check cannot run here (a binary not built), or None."""
    lacking = [name for name in BINARIES if tools.find(name, root) is None]
    if not lacking:
        return None
    return (f"{' and '.join(lacking)} not found in the tool cache, .tools/bin or PATH; "
            f"`{BUILD_COMMAND}` builds the pinned versions from source")


def binaries(root: Path = PROJECT_ROOT) -> dict[str, str]:
    found = {name: tools.find(name, root) for name in BINARIES}
    if any(path is None for path in found.values()):
        raise Unavailable(missing_reason(root) or "")
    return found  # type: ignore[return-value]


# -- talking to it ---------------------------------------------------------------


@dataclass
class Response:
    status: int
    body: dict
    warnings: list[str]


@dataclass
class Connection:
    """A client of a running server: HTTPS to 127.0.0.1 with the run's token,
    trusting the certificate the server made for itself."""

    url: str
    token: str
    ca: str
    log: str  # the kube-apiserver's log file

    def __post_init__(self) -> None:
        self._local = threading.local()
        parsed = urllib.parse.urlsplit(self.url)
        self._host, self._port = parsed.hostname or "127.0.0.1", parsed.port or 443
        self._context = ssl.create_default_context(cafile=self.ca)
        self._context.check_hostname = False  # the certificate names the server's own host names

    def _connection(self) -> http.client.HTTPSConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPSConnection(self._host, self._port, context=self._context, timeout=60)
            self._local.conn = conn
        return conn

    def request(self, method: str, path: str, body: dict | None = None,
                content_type: str = "application/json") -> Response:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = content_type
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request(method, path, body=data, headers=headers)
                reply = conn.getresponse()
                raw = reply.read()
                break
            except (OSError, http.client.HTTPException):
                conn.close()
                self._local.conn = None
                if attempt == 2:
                    raise
        try:
            parsed = json.loads(raw) if raw else {}
        except ValueError:
            parsed = {"message": raw.decode("utf-8", "replace").strip()}
        warnings = [_warning_text(w) for w in reply.headers.get_all("Warning") or []]
        return Response(reply.status, parsed if isinstance(parsed, dict) else {"items": parsed}, warnings)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _warning_text(header: str) -> str:
    """The text of a ``Warning: 299 - "text"`` header."""
    parts = header.split(" ", 2)
    text = parts[2] if len(parts) == 3 else header
    if text.startswith('"') and text.endswith('"'):
        text = text[1:-1].replace('\\"', '"')
    return text


# -- the processes -----------------------------------------------------------------


def _free_port() -> int:
    """A port on 127.0.0.1 the system picks, outside the kwok tier's range."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in KWOK_PORTS:
            return port
    raise Unavailable("the system picked only ports in the kwok range 21000-26000 fifty times")


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the thread that started it
    ends, so a killed run leaves no server behind."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _service_account_key(private: Path, public: Path) -> None:
    """A new key pair for signing service-account tokens (none is ever
    issued here, but kube-apiserver does not start without one)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                          serialization.NoEncryption()))
    private.chmod(0o600)
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))


def _http_ok(url: str, headers: dict | None = None, context: ssl.SSLContext | None = None) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=2,
                                    context=context) as reply:
            return reply.status == 200
    except (OSError, ValueError):
        return False


class Server:
    """etcd and kube-apiserver, started in ``folder`` (which ``stop`` removes)."""

    def __init__(self, folder: Path, root: Path = PROJECT_ROOT) -> None:
        self.folder = Path(folder)
        self.root = root
        self.procs: list[subprocess.Popen] = []

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(self.folder / f"{name}.log", "ab")
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    cwd=self.folder, start_new_session=True, preexec_fn=_die_with_parent,
                                    env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GOGC": "50",
                                         "HOME": str(self.folder)})
        finally:
            log.close()
        self.procs.append(proc)
        with open(self.folder / PIDS_FILE, "a", encoding="utf-8") as out:
            out.write(f"{proc.pid}\n")
        return proc

    def _wait(self, proc: subprocess.Popen, name: str, ready, deadline: float) -> None:
        while not ready():
            if proc.poll() is not None:
                tail = (self.folder / f"{name}.log").read_text(encoding="utf-8", errors="replace").strip()
                raise Unavailable(f"{name} exited with status {proc.returncode} before it was ready:\n"
                                  + "\n".join(tail.splitlines()[-8:]))
            if time.monotonic() > deadline:
                raise Unavailable(f"{name} was not ready after {READY_TIMEOUT:.0f}s (log: {self.folder / name}.log)")
            time.sleep(0.1)

    def start(self) -> Connection:
        found = binaries(self.root)
        deadline = time.monotonic() + READY_TIMEOUT
        etcd_port, peer_port = _free_port(), _free_port()
        etcd_url, peer_url = f"http://127.0.0.1:{etcd_port}", f"http://127.0.0.1:{peer_port}"
        etcd = self._spawn("etcd", [
            found["etcd"], "--name=docs-test", f"--data-dir={self.folder / 'etcd'}",
            f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=docs-test={peer_url}", "--unsafe-no-fsync", "--log-level=warn",
        ])
        # Made while etcd starts.
        token = os.urandom(24).hex()
        (self.folder / "tokens.csv").write_text(f'{token},{TOKEN_USER},{TOKEN_USER},"system:masters"\n')
        (self.folder / "tokens.csv").chmod(0o600)
        _service_account_key(self.folder / "service-account.key", self.folder / "service-account.pub")
        self._wait(etcd, "etcd", lambda: _http_ok(f"{etcd_url}/health"), deadline)
        port = _free_port()
        apiserver = self._spawn("kube-apiserver", [
            found["kube-apiserver"], f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={port}",
            f"--cert-dir={self.folder / 'certs'}", f"--token-auth-file={self.folder / 'tokens.csv'}",
            "--authorization-mode=AlwaysAllow",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={self.folder / 'service-account.pub'}",
            f"--service-account-signing-key-file={self.folder / 'service-account.key'}",
            "--service-cluster-ip-range=10.96.0.0/16",
            # No pod can serve a webhook here (as on the kwok tier).
            "--disable-admission-plugins=MutatingAdmissionWebhook,ValidatingAdmissionWebhook",
            "--enable-priority-and-fairness=false", "--endpoint-reconciler-type=none", "--profiling=false",
            "--shutdown-delay-duration=0s",
        ])
        ca = self.folder / "certs" / "apiserver.crt"
        url = f"https://127.0.0.1:{port}"
        self._wait(apiserver, "kube-apiserver", lambda: ca.is_file() and _http_ok(
            f"{url}/readyz", {"Authorization": f"Bearer {token}"}, _insecure_context(ca)), deadline)
        return Connection(url, token, str(ca), str(self.folder / "kube-apiserver.log"))

    def stop(self) -> None:
        for proc in reversed(self.procs):  # the API server first, then its etcd
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.procs.clear()


def _insecure_context(ca: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    context.check_hostname = False
    return context


# -- one server per run ---------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale(base: Path | None = None) -> list[str]:
    """Remove the folders of runs that were killed (their owner's pid is
    gone), ending any process still running from them; returns what went."""
    base = Path(base or tempfile.gettempdir())
    removed = []
    for folder in base.glob(f"{PREFIX}*"):
        try:
            owner = int(folder.name[len(PREFIX):].split("-", 1)[0])
        except ValueError:
            continue
        if _alive(owner):
            continue
        pids = folder / PIDS_FILE
        for line in (pids.read_text().split() if pids.is_file() else []):
            with contextlib.suppress(ValueError, OSError):
                pid = int(line)
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode("utf-8", "replace")
                if str(folder) in cmdline:  # still one of ours, not a reused pid
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(str(folder))
    return removed


class Owner:
    """The process that starts the run's server and stops it. ``start``
    starts it in the background; a ``wanted`` file in the folder (written by
    ``connect`` in any process) starts it too. ``stop`` ends it and removes
    the folder."""

    def __init__(self, root: Path = PROJECT_ROOT) -> None:
        sweep_stale()
        self.root = root
        self.folder = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))
        self._started = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        # Also when the run ends without reaching its own teardown (a run
        # whose console went away fails while it reports, and exits).
        atexit.register(self.stop)
        watcher = threading.Thread(target=self._watch, name="apiserver-watch", daemon=True)
        watcher.start()
        self._threads.append(watcher)

    def start(self) -> None:
        """Start the server in the background (once)."""
        if self._started.is_set() or self._stopping.is_set():
            return
        self._started.set()
        # The thread lives as long as the server: the processes die with it.
        thread = threading.Thread(target=self._serve, name="apiserver", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _watch(self) -> None:
        while not self._stopping.wait(0.05):
            if (self.folder / WANTED_FILE).exists():
                self.start()
                return

    def _serve(self) -> None:
        run = self.folder / "run"
        run.mkdir(exist_ok=True)
        server = Server(run, self.root)
        try:
            try:
                connection = server.start()
            except Exception as error:  # published for every process that waits for it
                _publish(self.folder / FAILED_FILE, f"the API server could not start: {error}")
                return
            info = {"url": connection.url, "token": connection.token, "ca": connection.ca, "log": connection.log}
            _publish(self.folder / SERVER_FILE, json.dumps(info))
            self._stopping.wait()
        finally:
            server.stop()

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=30)
        shutil.rmtree(self.folder, ignore_errors=True)


def _publish(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def connect(folder: Path, timeout: float = CONNECT_TIMEOUT) -> Connection:
    """The run's server, asking its owner to start it when it has not."""
    folder = Path(folder)
    deadline = time.monotonic() + timeout
    asked = False
    while True:
        if (folder / SERVER_FILE).is_file():
            return Connection(**json.loads((folder / SERVER_FILE).read_text(encoding="utf-8")))
        if (folder / FAILED_FILE).is_file():
            raise Unavailable((folder / FAILED_FILE).read_text(encoding="utf-8"))
        if not folder.is_dir():
            raise Unavailable(f"{folder} is gone: the run that owned the API server has ended")
        if not asked:
            with contextlib.suppress(OSError):
                (folder / WANTED_FILE).touch()
            asked = True
        if time.monotonic() > deadline:
            raise Unavailable(f"the API server was not ready after {timeout:.0f}s ({folder})")
        time.sleep(0.05)


@contextlib.contextmanager
def exclusive(folder: Path):
    """Hold the server for one cluster's objects (one process at a time)."""
    with open(Path(folder) / LOCK_FILE, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# Where this process finds the run's server: set by the pytest wiring
# (``use``); without it, the first use makes a server owned by this process,
# stopped when it exits.
_folder: Path | None = None
_own: Owner | None = None


def use(folder: Path | str | None) -> None:
    global _folder
    _folder = Path(folder) if folder else None


def shared_folder(root: Path = PROJECT_ROOT) -> Path:
    global _own
    if _folder is not None:
        return _folder
    if _own is None:
        _own = Owner(root)
    return _own.folder


# -- whether a run will need the server ------------------------------------------------

PREDICTION_INPUTS = ("clusters", "platform", "apps", "versions.yaml", "tests/harness", "tests/mutations",
                     "tests/test_manifests.py")


def binary_parts(root: Path = PROJECT_ROOT) -> tuple[str, list[tuple[str, bytes]]]:
    """The kube-apiserver binary, and etcd's identity, for a cache key."""
    found = binaries(root)
    etcd = os.stat(found["etcd"])
    return found["kube-apiserver"], [("etcd", f"{os.path.realpath(found['etcd'])}\0{etcd.st_size}\0"
                                              f"{etcd.st_mtime_ns}".encode())]


def prediction_key(root: Path = PROJECT_ROOT) -> str | None:
    """A name for everything the run's plans are made from (the tree, the
    harness's code, the binaries), or None when the binaries are missing."""
    import hashlib

    if missing_reason(root) is not None:
        return None
    digest = hashlib.sha256()
    binary, parts = binary_parts(root)
    digest.update(os.path.realpath(binary).encode() + str(os.stat(binary).st_mtime_ns).encode() + parts[0][1])
    digest.update(str(tools.find("flux", root)).encode())
    for top in PREDICTION_INPUTS:
        base = Path(root) / top
        files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file()
                                                    and "__pycache__" not in p.parts)
        for path in files:
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _marker(key: str, root: Path) -> Path:
    return build_cache.folder(CACHE_TOOL, root) / f"run-{key}"


def predicted_needed(key: str | None, root: Path = PROJECT_ROOT) -> bool:
    """Whether the last run made of the same inputs had to ask the server."""
    if key is None:
        return False
    try:
        return _marker(key, root).read_text(encoding="utf-8").strip() != "cached"
    except OSError:
        return True


def remember(key: str | None, used: bool, root: Path = PROJECT_ROOT) -> None:
    if key is None:
        return
    try:
        _marker(key, root).parent.mkdir(parents=True, exist_ok=True)
        _marker(key, root).write_text("used" if used else "cached", encoding="utf-8")
    except OSError:
        pass
