"""The strict site build (``mkdocs build --strict``) into a temporary folder,
started in the background when the run starts, so that it runs while the
other checks do; ``test_site_builds_strict`` waits for its result.

The build only reads the project: the site goes to a temporary folder, its
output to a file beside it (a pipe could fill up and stall the build while
nobody reads it).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

TIMEOUT = 300


@dataclass
class SiteBuild:
    proc: subprocess.Popen
    folder: tempfile.TemporaryDirectory
    output_path: Path

    def result(self) -> tuple[int | None, str]:
        """(exit status, or None when it did not finish in TIMEOUT seconds;
        the build's output). Waits for the build."""
        try:
            code = self.proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            code = None
        output = self.output_path.read_text(encoding="utf-8", errors="replace")
        self.folder.cleanup()
        return code, output

    def stop(self) -> None:
        """End the build if it still runs (the test was not reached) and
        remove its folder."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.folder.cleanup()


def start(root: Path) -> SiteBuild:
    folder = tempfile.TemporaryDirectory(prefix="docs-test-site-")
    output_path = Path(folder.name) / "build.log"
    with open(output_path, "wb") as output:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
             "--site-dir", str(Path(folder.name) / "site")],
            cwd=root, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
        )
    return SiteBuild(proc, folder, output_path)
