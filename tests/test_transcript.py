"""How a page's transcript is compared with what a block printed: what is
normalised (this run's addresses, timestamps, ages, hashes, spacing) and
that everything else still has to match."""

from __future__ import annotations

from harness import transcript
from harness.model import Block, Mode, Origin, Outcome

RUN = {"oci://127.0.0.1:21007/platform": "${PLATFORM_OCI_URL}", "oci://127.0.0.1:21007": "${OCI_MIRROR_GHCR_IO}",
       "/tmp/gwp-work-x/home-kind": "${HOME}"}


def shown(text: str) -> Block:
    origins = [Origin("docs/x.md", 10 + i) for i in range(len(text.split("\n")))]
    return Block(page="docs/x.md", index=1, lang="text", attrs="", text=text, origins=origins,
                 fence=Origin("docs/x.md", 9), mode=Mode.OUTPUT, options={})


def outcome(page: str, printed: str, run_values=RUN) -> Outcome:
    return transcript.compare(shown(page), printed, run_values).outcome


def test_the_runs_own_values_print_under_the_names_the_page_gives_them() -> None:
    printed = "pushed oci://127.0.0.1:21007/platform:1.1.0\nmirror oci://127.0.0.1:21007\nkey /tmp/gwp-work-x/home-kind/k"
    page = "pushed ${PLATFORM_OCI_URL}:1.1.0\nmirror ${OCI_MIRROR_GHCR_IO}\nkey ${HOME}/k"
    assert outcome(page, printed) is Outcome.PASSED
    assert outcome(page, printed, run_values={}) is Outcome.FAILED
    assert outcome("pushed oci://ghcr.io/YOUR-USER/platform:1.1.0\nmirror ${OCI_MIRROR_GHCR_IO}\nkey ${HOME}/k",
                   printed) is Outcome.FAILED


def test_timestamps_ages_and_hashes_are_placeholders() -> None:
    printed = ("platform 1.1.0@sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 "
               "True 42s applied at 2026-12-04T23:10:42Z")
    assert outcome("platform 1.1.0@sha256:<hash> True <age> applied at <time>", printed) is Outcome.PASSED
    assert outcome("platform 1.1.0@sha256:0000000 True 3m12s applied at 2025-01-01T00:00:00Z",
                   printed) is Outcome.PASSED


def test_anything_else_must_match() -> None:
    printed = "platform 1.1.0@sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 True"
    assert outcome("platform 1.0.0@sha256:<hash> True", printed) is Outcome.FAILED
    assert outcome("platform 1.1.0@sha256:<hash> False", printed) is Outcome.FAILED
    assert outcome("platform 1.1.0@sha256:<hash> True\nanother line", printed) is Outcome.FAILED


def test_a_failure_names_the_page_line_and_shows_the_difference() -> None:
    finding = transcript.compare(shown("first\nsecond"), "first\nthird", RUN)
    assert finding.outcome is Outcome.FAILED
    assert str(finding).startswith("docs/x.md:11: [output]"), str(finding)
    assert "-second" in finding.message and "+third" in finding.message


def test_a_saved_transcript_pasted_into_the_page_passes() -> None:
    printed = ("NAME      REVISION                 READY\n"
               "platform  1.1.0@sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08  True\n"
               "from oci://127.0.0.1:21007/platform at 2026-12-04T23:10:42Z, 42s ago\n")
    saved = transcript.as_page_shows(printed, RUN)
    assert saved == ("NAME      REVISION                 READY\n"
                     "platform  1.1.0@sha256:<hash>  True\n"
                     "from ${PLATFORM_OCI_URL} at <time>, <age> ago\n")
    assert outcome(saved, printed) is Outcome.PASSED
