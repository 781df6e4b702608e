"""The strict site build (``mkdocs build --strict``) into a temporary folder,
started in the background when the run starts, so that it runs while the
other checks do; ``test_site_builds_strict`` waits for its result.

The build only reads the project: the site goes to a temporary folder, its
output to a file beside it (a pipe could fill up and stall the build while
nobody reads it). The built site stays there for the tests that read its
HTML (``site_dir``) until ``stop`` removes the folder at the end of the run.

When the tests run in several processes (pytest-xdist), the controlling
process starts the one build and ``publish``es it: its exit status is written
beside its output when it ends, and the test, in whichever process runs it,
``attach``es to the folder and waits for that file.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

TIMEOUT = 300
OUTPUT = "build.log"
SITE = "site"
STATUS = "exit-status"  # the exit status, or "none" when the build was killed after TIMEOUT


@dataclass
class SiteBuild:
    proc: subprocess.Popen
    folder: tempfile.TemporaryDirectory
    output_path: Path
    publisher: threading.Thread | None = field(default=None, repr=False)

    def wait(self) -> int | None:
        """The exit status, or None when the build did not finish in TIMEOUT
        seconds (it is killed then)."""
        try:
            return self.proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    @property
    def site_dir(self) -> Path:
        return Path(self.folder.name) / SITE

    def result(self) -> tuple[int | None, str]:
        """(exit status, or None when it did not finish in TIMEOUT seconds;
        the build's output). Waits for the build."""
        code = self.wait()
        output = self.output_path.read_text(encoding="utf-8", errors="replace")
        return code, output

    def publish(self) -> None:
        """Write the exit status into the folder when the build ends (from a
        thread of this process), for ``attach`` in other processes."""
        def write_status() -> None:
            code = self.wait()
            status = Path(self.folder.name) / STATUS
            partial = status.with_suffix(".partial")
            partial.write_text("none" if code is None else str(code), encoding="utf-8")
            os.replace(partial, status)

        self.publisher = threading.Thread(target=write_status, name="site-build", daemon=True)
        self.publisher.start()

    def stop(self) -> None:
        """End the build if it still runs (the test was not reached) and
        remove its folder."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.publisher is not None:
            self.publisher.join()
        self.folder.cleanup()


@dataclass
class AttachedBuild:
    """A build another process started and publishes in ``folder``."""

    folder: Path

    @property
    def site_dir(self) -> Path:
        return self.folder / SITE

    def stop(self) -> None:
        """Nothing to do: the process that started the build removes it."""

    def result(self) -> tuple[int | None, str]:
        """As ``SiteBuild.result``; the folder stays (its owner removes it)."""
        status = self.folder / STATUS
        deadline = time.monotonic() + TIMEOUT + 30
        while not status.exists():
            if time.monotonic() > deadline:
                return None, f"no exit status in {status} after {TIMEOUT + 30}s"
            time.sleep(0.05)
        text = status.read_text(encoding="utf-8").strip()
        output = (self.folder / OUTPUT).read_text(encoding="utf-8", errors="replace")
        return (None if text == "none" else int(text)), output


def start(root: Path, folder: tempfile.TemporaryDirectory | None = None) -> SiteBuild:
    """Start the build; into ``folder`` when given (else a new temporary one)."""
    folder = folder or tempfile.TemporaryDirectory(prefix="docs-test-site-")
    output_path = Path(folder.name) / OUTPUT
    with open(output_path, "wb") as output:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
             "--site-dir", str(Path(folder.name) / SITE)],
            cwd=root, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
        )
    return SiteBuild(proc, folder, output_path)


def attach(folder: str | Path) -> AttachedBuild:
    return AttachedBuild(Path(folder))
