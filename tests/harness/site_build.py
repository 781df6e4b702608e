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

The build runs without ``--quiet``: in mkdocs 1.6 ``--quiet`` raises the log
level above WARNING, so the warnings the ``validation:`` settings of
``mkdocs.yml`` ask for (a link to a missing page or anchor, a page left out
of the nav) never reach the counter that ``--strict`` aborts on, and the
build passes. ``findings`` turns each warning into a finding at the page and
line it is about, where the warning names a page.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.model import Finding, Origin, Outcome

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
            [sys.executable, "-m", "mkdocs", "build", "--strict",
             "--site-dir", str(Path(folder.name) / SITE)],
            cwd=root, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
            env=dict(os.environ, NO_MKDOCS_2_WARNING="1"),
        )
    return SiteBuild(proc, folder, output_path)


def attach(folder: str | Path) -> AttachedBuild:
    return AttachedBuild(Path(folder))


# -- the build's warnings, as findings ---------------------------------------------

CHECK = "site-build"
MESSAGE = re.compile(r"^(?P<level>WARNING|ERROR)\s+-\s+(?P<text>.*)$")
DOC_LINK = re.compile(r"^Doc file '(?P<page>[^']+)' contains (?:an? )?(?:\w+ )*links? '(?P<link>[^']*)'")
NAV_REFERENCE = re.compile(r"^A reference to '(?P<target>[^']+)' is included in the 'nav' configuration")
OMITTED = "The following pages exist in the docs directory, but are not included in the \"nav\" configuration"


def messages(output: str) -> list[str]:
    """Each WARNING or ERROR of the build's output, with its continuation
    lines (the list of pages left out of the nav, a traceback's lines)."""
    found: list[str] = []
    inside = False  # the lines after a WARNING or ERROR line belong to it
    for line in output.splitlines():
        match = MESSAGE.match(line)
        if match:
            found.append(f"{match.group('level')}: {match.group('text').strip()}")
            inside = True
        elif inside and line.startswith((" ", "\t")) and line.strip():
            found[-1] += "\n" + line.rstrip()
        elif line.startswith(("Aborted", "Error")):
            found.append(line.strip())
            inside = True
        else:
            inside = False
    return found


def _line_of(path: Path, needle: str) -> int:
    """The first line of ``path`` that holds ``needle`` (1 when none does)."""
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except OSError:
        return 1
    for wanted in (f"]({needle}", f"]: {needle}", f"({needle}", needle):
        for number, line in enumerate(lines, 1):
            if wanted in line:
                return number
    return 1


def findings(output: str, root: Path, docs_dir: str = "docs") -> list[Finding]:
    """The build's warnings and errors, each at the page line (or the
    mkdocs.yml line) it is about when the message names one."""
    root = Path(root)
    found: list[Finding] = []
    for message in messages(output):
        text = message.split(": ", 1)[1] if ": " in message else message
        if message.startswith("Aborted"):
            continue  # the count; every warning it counts is a finding of its own
        link = DOC_LINK.match(text)
        nav = NAV_REFERENCE.match(text)
        if link:
            page = f"{docs_dir}/{link.group('page')}"
            where = Origin(page, _line_of(root / page, link.group("link")))
            fix = "fix the link or the page it points at (mkdocs.yml `validation:` makes this a failure)"
            found.append(Finding(CHECK, Outcome.FAILED, where, f"{text.splitlines()[0].rstrip('.')}; {fix}"))
        elif nav:
            where = Origin("mkdocs.yml", _line_of(root / "mkdocs.yml", nav.group("target")))
            found.append(Finding(CHECK, Outcome.FAILED, where, f"{text.rstrip('.')}; fix the nav entry or add the page"))
        elif text.startswith(OMITTED):
            for line in text.splitlines()[1:]:
                name = line.strip().removeprefix("- ").strip()
                if name:
                    found.append(Finding(
                        CHECK, Outcome.FAILED, Origin(f"{docs_dir}/{name}", 1),
                        f"{docs_dir}/{name} is not in the nav of mkdocs.yml: add it to `nav:` or remove the page",
                    ))
        else:
            found.append(Finding(CHECK, Outcome.FAILED, Origin("mkdocs.yml", 1),
                                 f"mkdocs build --strict: {message}"))
    return found
