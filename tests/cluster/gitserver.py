"""A git smart-HTTP server for the clusters: a snapshot of the working tree,
uncommitted changes included, served by dulwich from the test process.

The snapshot is a bare repository in a temporary directory with one commit on
``main`` holding every file git would track (tracked files as they are on disk,
plus untracked files that are not ignored). Clusters and ``flux bootstrap``
clone it and push to it; the working tree is never written.

The server must listen on an address the kind nodes can reach: the gateway
of the ``kind`` Docker network is an address of the host on that network
(``registry.kind_gateway()`` finds it). Tests bind 127.0.0.1.
"""

from __future__ import annotations

import os
import socketserver
import stat
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from wsgiref.simple_server import make_server

from dulwich.index import commit_tree
from dulwich.objects import Blob, Commit
from dulwich.repo import Repo
from dulwich.protocol import CAPABILITY_OFS_DELTA, CAPABILITY_SIDE_BAND_64K
from dulwich.server import DEFAULT_HANDLERS, DictBackend, UploadPackHandler
from dulwich.web import WSGIRequestHandlerLogger, WSGIServerLogger, make_wsgi_chain

from . import names

AUTHOR = b"docs-test harness <harness@gitops-whitepaper.invalid>"


class UploadPackForAnyClient(UploadPackHandler):
    """dulwich's upload-pack, without requiring the ``thin-pack`` capability.

    dulwich asks every client for ``thin-pack``, but never sends a thin pack
    anyway; go-git (the flux CLI, source-controller) does not offer it, and
    its clones would fail with "Client does not support required capability
    thin-pack". The git CLI offers it, which is why only Flux's client shows
    the difference."""

    @classmethod
    def required_capabilities(cls):
        return (CAPABILITY_SIDE_BAND_64K, CAPABILITY_OFS_DELTA)


HANDLERS = {**DEFAULT_HANDLERS, b"git-upload-pack": UploadPackForAnyClient}


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServerLogger):
    """Several controllers fetch at once; one slow client must not block them."""

    daemon_threads = True
    allow_reuse_address = True


def tree_files(root: Path) -> list[str]:
    """Paths (relative, POSIX) git would put in a commit of the working tree
    right now: tracked files that still exist plus untracked, non-ignored ones."""
    out = subprocess.run(
        ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True,
        capture_output=True,
    ).stdout
    paths = sorted({p for p in out.decode().split("\0") if p})
    return [p for p in paths if os.path.lexists(root / p) and not (root / p).is_dir()]


def snapshot(root: Path, dest: Path, message: str = "Snapshot of the working tree under test") -> str:
    """Write a bare repository at ``dest`` whose ``main`` holds the working tree
    of ``root`` as it is on disk. Returns the commit id (hex)."""
    repo = Repo.init_bare(str(dest), mkdir=True)
    try:
        entries = []
        for rel in tree_files(root):
            path = root / rel
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                blob, mode = Blob.from_string(os.readlink(path).encode()), 0o120000
            else:
                blob = Blob.from_string(path.read_bytes())
                mode = 0o100755 if info.st_mode & stat.S_IXUSR else 0o100644
            repo.object_store.add_object(blob)
            entries.append((rel.encode(), blob.id, mode))
        tree = commit_tree(repo.object_store, entries)
        commit = Commit()
        commit.tree = tree
        commit.author = commit.committer = AUTHOR
        commit.author_time = commit.commit_time = int(time.time())
        commit.author_timezone = commit.commit_timezone = 0
        commit.message = message.encode() + b"\n"
        repo.object_store.add_object(commit)
        ref = f"refs/heads/{names.DEFAULT_BRANCH}".encode()
        repo.refs[ref] = commit.id
        repo.refs.set_symbolic_ref(b"HEAD", ref)
        return commit.id.decode()
    finally:
        repo.close()


@dataclass
class GitServer:
    """A running server. ``url`` is what clusters and ``flux bootstrap`` use."""

    host: str
    port: int
    repo_dir: Path
    commit: str
    _server: socketserver.BaseServer
    _thread: threading.Thread
    _tmp: tempfile.TemporaryDirectory | None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{names.GIT_REPO_PATH}"

    def head(self, branch: str = names.DEFAULT_BRANCH) -> str:
        """The commit ``branch`` points at now (pushes move it)."""
        repo = Repo(str(self.repo_dir))
        try:
            return repo.refs[f"refs/heads/{branch}".encode()].decode()
        finally:
            repo.close()

    def stop(self) -> None:
        """Stop serving and remove the snapshot. Safe to call twice."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=10)
        self._server.server_close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> "GitServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(root: Path, host: str = "127.0.0.1", port: int = 0) -> GitServer:
    """Snapshot ``root`` and serve it on ``host:port`` (0 picks a free port) in
    a background thread. Receive-pack is on: pushes land in the snapshot."""
    tmp = tempfile.TemporaryDirectory(prefix=f"{names.PREFIX}git-")
    repo_dir = Path(tmp.name) / names.GIT_REPO_PATH.strip("/")
    try:
        commit = snapshot(root, repo_dir)
        backend = DictBackend({names.GIT_REPO_PATH: Repo(str(repo_dir))})
        app = make_wsgi_chain(backend, handlers=HANDLERS)
        server = make_server(
            host, port, app, server_class=_ThreadingServer, handler_class=WSGIRequestHandlerLogger
        )
    except BaseException:
        tmp.cleanup()
        raise
    # stop() waits for the serving loop to notice, up to poll_interval (0.5 s by default)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name="gwp-git-server", daemon=True)
    thread.start()
    return GitServer(host, server.server_address[1], repo_dir, commit, server, thread, tmp)
