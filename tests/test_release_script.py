"""snippets/platform-release.sh without a registry: a scratch repository with
platform/ and a bare git remote, ``$FLUX`` a script that answers ``flux list
artifacts`` as the test says and records what ``flux push artifact`` would
push, and ``$COSIGN`` a script that records what ``cosign sign`` would sign.
Neither is the real tool: the cluster tier runs the script against a real
registry, and signing there needs the cosign CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.model import PROJECT_ROOT
from test_snippet_scripts import tool

SCRIPT = str(PROJECT_ROOT / "snippets/platform-release.sh")
REGISTRY = "oci://registry.example.test/gitops/platform"
VERSION = "1.1.0"
TAG = f"platform-v{VERSION}"
NAME_UNKNOWN = ("✗ listing tags failed: GET https://registry.example.test/v2/gitops/platform/tags/list?n=1000: "
                "NAME_UNKNOWN: repository name not known to registry; map[name:gitops/platform]")

FAKE_FLUX = """#!/usr/bin/env bash
printf 'flux %s\\n' "$*" >> "$FLUX_CALLS"
case "$1 $2" in
  "list artifacts")
    if [[ -n "${FLUX_LIST_ERROR:-}" ]]; then echo "$FLUX_LIST_ERROR" >&2; exit 1; fi
    printf 'ARTIFACT\\tDIGEST\\tSOURCE\\tREVISION\\n%s' "${FLUX_LIST:-}" ;;
  "push artifact")
    [[ -z "${FLUX_PUSH_FAIL:-}" ]] || { echo "✗ pushing artifact failed: denied" >&2; exit 1; }
    for arg; do
      if [[ "$arg" == --path=* ]]; then (cd "${arg#--path=}" && find . -type f | sort) > "$FLUX_PUSHED"; fi
    done
    # What `flux push artifact --output=json` prints.
    printf '{\n  "url": "oci://%s",\n  "repository": "%s",\n  "tag": "%s",\n  "digest": "%s"\n}\n' \
      "registry.example.test/gitops/platform@$FAKE_DIGEST" "registry.example.test/gitops/platform" "1.1.0" "$FAKE_DIGEST" ;;
  *) echo "unexpected flux call: $*" >&2; exit 3 ;;
esac
"""
DIGEST = "sha256:" + "ab" * 32
FAKE_COSIGN = """#!/usr/bin/env bash
printf 'cosign %s\\n' "$*" >> "$FLUX_CALLS"
[[ -z "${COSIGN_FAIL:-}" ]] || { echo "Error: signing failed: UNAUTHORIZED" >&2; exit 1; }
"""
IDENTITY = {"GIT_AUTHOR_NAME": "Release Test", "GIT_AUTHOR_EMAIL": "release@example.test",
            "GIT_COMMITTER_NAME": "Release Test", "GIT_COMMITTER_EMAIL": "release@example.test"}


PLATFORM = {
    "platform/README.md": "# platform\n",
    "platform/baseline/kustomization.yaml": "resources:\n  - namespaces.yaml\n",
    "platform/baseline/namespaces.yaml": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: podinfo\n",
    "platform/configs/kustomization.yaml": "resources: []\n",
}


def git(*args: str, cwd: Path) -> str:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(cwd), **IDENTITY}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True,
                          timeout=60).stdout.strip()


@pytest.fixture(scope="module")
def made_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A platform/ committed, with an ignored file beside it, and a bare
    remote that has main: made once, copied for each test (``repo``)."""
    tmp = tmp_path_factory.mktemp("release-repo")
    root = tmp / "repo"
    # platform/ of the tree's shape, written here: the script is tested, not
    # the tree's platform (whose checks are the harness's).
    for name, text in PLATFORM.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    (root / "README.md").write_text("not part of a release\n", encoding="utf-8")
    (root / ".gitignore").write_text("*.local\n", encoding="utf-8")
    git("init", "--quiet", "--template=", "--initial-branch", "main", cwd=root)
    git("add", ".", cwd=root)
    git("commit", "--quiet", "-m", "platform", cwd=root)
    (root / "platform/notes.local").write_text("an ignored file: must not ship\n", encoding="utf-8")
    remote = tmp / "remote.git"
    git("init", "--quiet", "--template=", "--bare", str(remote), cwd=tmp)
    git("remote", "add", "origin", str(remote), cwd=root)
    git("push", "--quiet", "origin", "main", cwd=root)
    return root


@pytest.fixture
def repo(made_repo: Path, tmp_path: Path) -> Path:
    """This test's own copy of ``made_repo`` and of its remote (a copy costs
    less than the seven git commands that make one)."""
    root = tmp_path / "repo"
    shutil.copytree(made_repo, root, symlinks=True)
    shutil.copytree(made_repo.parent / "remote.git", tmp_path / "remote.git", symlinks=True)
    git("remote", "set-url", "origin", str(tmp_path / "remote.git"), cwd=root)
    return root


def release(repo: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    tmp = repo.parent
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp), "LC_ALL": "C.UTF-8", **IDENTITY,
            "FLUX": tool(tmp, "flux", FAKE_FLUX), "FLUX_CALLS": str(tmp / "flux-calls"),
            "FLUX_PUSHED": str(tmp / "pushed"), "FLUX_LIST_ERROR": NAME_UNKNOWN, "FAKE_DIGEST": DIGEST,
            "COSIGN": tool(tmp, "cosign", FAKE_COSIGN)}
    key = tmp / "cosign.key"
    key.write_text("a throwaway key file: the fake cosign never reads it\n", encoding="utf-8")
    signing = [] if any(a in ("--sign-key", "--keyless", "--no-key") for a in args) else ["--sign-key", str(key)]
    args = tuple(a for a in args if a != "--no-key")
    return subprocess.run(["bash", SCRIPT, VERSION, "--registry", REGISTRY, "--root", str(repo), *signing, *args],
                          env={**base, **env}, capture_output=True, text=True, timeout=120)


def flux_calls(repo: Path) -> list[str]:
    path = repo.parent / "flux-calls"
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def pushed(repo: Path) -> bool:
    return any(c.startswith("flux push artifact") for c in flux_calls(repo))


def tags(repo: Path) -> tuple[str, str]:
    """The release tag here and on the remote ("" where it is missing)."""
    return (git("tag", "--list", TAG, cwd=repo),
            git("ls-remote", "--tags", "origin", f"refs/tags/{TAG}", cwd=repo))


def listed(revision: str) -> str:
    return f"registry.example.test/gitops/platform:{VERSION}\t{DIGEST}\thttps://git.example.test\t{revision}\n"


def signed(repo: Path) -> list[str]:
    return [c for c in flux_calls(repo) if c.startswith("cosign sign")]


def said(proc: subprocess.CompletedProcess) -> str:
    return f"platform-release.sh exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"


def test_first_release_pushes_the_commit_platform_then_tags(repo: Path) -> None:
    proc = release(repo)
    assert proc.returncode == 0, said(proc)
    commit = git("rev-parse", "HEAD", cwd=repo)
    push = next(c for c in flux_calls(repo) if c.startswith("flux push artifact"))
    assert f"--revision={TAG}@sha1:{commit}" in push and f"{REGISTRY}:{VERSION}" in push, push
    here, there = tags(repo)
    assert here == TAG and there.endswith(f"refs/tags/{TAG}"), (
        "the release tag must exist here and on the remote\n" + said(proc))


def test_the_artifact_holds_what_the_commit_has_under_platform(repo: Path) -> None:
    proc = release(repo)
    assert proc.returncode == 0, said(proc)
    content = (repo.parent / "pushed").read_text(encoding="utf-8").splitlines()
    tracked = sorted("./" + f for f in git("ls-files", "platform", cwd=repo).splitlines())
    assert content == tracked, (
        "platform-release.sh: the artifact must hold platform/ of the commit and nothing else (no ignored files, "
        "nothing outside platform/)\n" + "\n".join(sorted(set(content) ^ set(tracked))))


def test_a_failed_push_leaves_no_tag(repo: Path) -> None:
    proc = release(repo, FLUX_PUSH_FAIL="1")
    assert proc.returncode != 0, said(proc)
    assert tags(repo) == ("", ""), "platform-release.sh tagged although the artifact push failed\n" + said(proc)
    again = release(repo)
    assert again.returncode == 0, "a rerun after a failed push must work\n" + said(again)


def test_refuses_a_tag_that_only_the_remote_has(repo: Path) -> None:
    git("tag", "-a", TAG, "-m", "released elsewhere", cwd=repo)
    git("push", "--quiet", "origin", f"refs/tags/{TAG}", cwd=repo)
    git("tag", "-d", TAG, cwd=repo)
    proc = release(repo)
    assert proc.returncode == 1 and f"tag {TAG} already exists on origin" in proc.stderr, said(proc)
    assert not pushed(repo), "platform-release.sh pushed an artifact although the version was released"


def test_refuses_a_version_the_registry_holds_from_another_commit(repo: Path) -> None:
    proc = release(repo, FLUX_LIST_ERROR="", FLUX_LIST=listed(f"{TAG}@sha1:{'e' * 40}"))
    assert proc.returncode == 1 and f"{REGISTRY}:{VERSION} already exists" in proc.stderr, said(proc)
    assert not pushed(repo) and tags(repo) == ("", ""), said(proc)


def test_resumes_a_run_that_stopped_after_the_push(repo: Path) -> None:
    commit = git("rev-parse", "HEAD", cwd=repo)
    proc = release(repo, FLUX_LIST_ERROR="", FLUX_LIST=listed(f"{TAG}@sha1:{commit}"))
    assert proc.returncode == 0, said(proc)
    assert not pushed(repo), "platform-release.sh pushed the artifact again\n" + said(proc)
    here, there = tags(repo)
    assert here == TAG and there.endswith(f"refs/tags/{TAG}"), said(proc)


def test_a_registry_error_stops_the_release(repo: Path) -> None:
    proc = release(repo, FLUX_LIST_ERROR="✗ listing tags failed: UNAUTHORIZED: authentication required")
    assert proc.returncode == 1 and "could not list the artifacts" in proc.stderr, said(proc)
    assert not pushed(repo) and tags(repo) == ("", ""), said(proc)


def test_dry_run_tags_and_pushes_nothing(repo: Path) -> None:
    proc = release(repo, "--dry-run")
    assert proc.returncode == 0, said(proc)
    assert not pushed(repo) and tags(repo) == ("", ""), said(proc)
    assert "+ git archive" in proc.stdout and "push artifact" in proc.stdout, said(proc)


def test_the_pushed_digest_is_signed_before_the_tag(repo: Path) -> None:
    proc = release(repo)
    assert proc.returncode == 0, said(proc)
    calls = flux_calls(repo)
    signs = signed(repo)
    assert signs == [f"cosign sign --yes --key {repo.parent / 'cosign.key'} registry.example.test/gitops/platform@{DIGEST}"], (
        "platform-release.sh must sign the pushed artifact by its digest, with the key given\n" + "\n".join(calls))
    assert calls.index(signs[0]) > next(i for i, c in enumerate(calls) if c.startswith("flux push artifact"))


def test_keyless_signs_without_a_key(repo: Path) -> None:
    proc = release(repo, "--keyless")
    assert proc.returncode == 0, said(proc)
    assert signed(repo) == [f"cosign sign --yes registry.example.test/gitops/platform@{DIGEST}"], said(proc)


def test_a_failed_signature_leaves_no_tag(repo: Path) -> None:
    proc = release(repo, COSIGN_FAIL="1")
    assert proc.returncode != 0, said(proc)
    assert tags(repo) == ("", ""), "platform-release.sh tagged although signing failed\n" + said(proc)
    commit = git("rev-parse", "HEAD", cwd=repo)
    again = release(repo, FLUX_LIST_ERROR="", FLUX_LIST=listed(f"{TAG}@sha1:{commit}"))
    assert again.returncode == 0, said(again)
    assert signed(repo)[-1].endswith(f"@{DIGEST}"), "the rerun must sign the artifact the registry holds\n" + said(again)


def test_refuses_to_release_unsigned(repo: Path) -> None:
    proc = release(repo, "--no-key")
    assert proc.returncode == 1 and "releases are signed" in proc.stderr, said(proc)
    assert not pushed(repo) and tags(repo) == ("", ""), said(proc)


def test_refuses_without_cosign(repo: Path) -> None:
    proc = release(repo, COSIGN=str(repo.parent / "no-such-cosign"))
    assert proc.returncode == 1 and "cosign not found" in proc.stderr, said(proc)
    assert not pushed(repo) and tags(repo) == ("", ""), said(proc)


def test_a_kms_key_is_passed_to_cosign_as_it_is(repo: Path) -> None:
    key = "awskms:///arn:aws:kms:eu-west-1:111122223333:key/release"
    proc = release(repo, "--sign-key", key)
    assert proc.returncode == 0, said(proc)
    assert signed(repo) == [f"cosign sign --yes --key {key} registry.example.test/gitops/platform@{DIGEST}"], said(proc)


@pytest.mark.parametrize("how", [("--no-tlog",), ()])
def test_no_tlog_signs_with_the_key_alone(repo: Path, how: tuple[str, ...]) -> None:
    proc = release(repo, *how, **({} if how else {"PLATFORM_RELEASE_NO_TLOG": "true"}))
    assert proc.returncode == 0, said(proc)
    (sign,) = signed(repo)
    assert f"--key {repo.parent / 'cosign.key'} --signing-config " in sign and " --trusted-root " in sign, sign
    assert sign.endswith(f"registry.example.test/gitops/platform@{DIGEST}"), sign


def test_no_tlog_is_refused_for_keyless(repo: Path) -> None:
    proc = release(repo, "--keyless", "--no-tlog")
    assert proc.returncode != 0 and "--no-tlog is for --sign-key" in proc.stderr, said(proc)
    assert not pushed(repo)
