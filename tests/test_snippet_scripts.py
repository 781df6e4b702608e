"""snippets/flux-bootstrap.sh without a cluster: the flux command it runs for
http, https and ssh URLs, and what it refuses.

flux is replaced by ``$FLUX``, a script that records its arguments; the
context check runs against ``$KUBECTL``, which lists the contexts given, or
against the real kubectl with a kubeconfig made for the test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.model import PROJECT_ROOT

SCRIPT = "snippets/flux-bootstrap.sh"
CONTEXT = "kind-development"
PASSWORD = "s3cret-token"

# flux: one argument a line, to the file $FLUX_ARGS names.
FAKE_FLUX = '#!/usr/bin/env bash\nprintf "%s\\n" "$@" > "$FLUX_ARGS"\n'
# kubectl: answers `config get-contexts -o name` from $CONTEXTS, nothing else.
FAKE_KUBECTL = """#!/usr/bin/env bash
[[ "$*" == "config get-contexts -o name" ]] || { echo "unexpected kubectl call: $*" >&2; exit 3; }
printf '%s\\n' $CONTEXTS
"""


def tool(tmp: Path, name: str, text: str) -> str:
    path = tmp / name
    path.write_text(text, encoding="utf-8")
    path.chmod(0o755)
    return str(path)


def bootstrap(tmp: Path, *args: str, contexts: str = CONTEXT, **env: str) -> subprocess.CompletedProcess:
    """Run the script with the fake flux and kubectl and a clean environment."""
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    base = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LC_ALL": "C.UTF-8",
        "FLUX": tool(tmp, "flux", FAKE_FLUX),
        "KUBECTL": tool(tmp, "kubectl", FAKE_KUBECTL),
        "FLUX_ARGS": str(tmp / "flux-args"),
        "CONTEXTS": contexts,
    }
    return subprocess.run(
        ["bash", SCRIPT, *args], cwd=PROJECT_ROOT, env={**base, **env}, capture_output=True, text=True, timeout=60
    )


def flux_args(tmp: Path) -> list[str] | None:
    path = tmp / "flux-args"
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else None


def said(proc: subprocess.CompletedProcess) -> str:
    return f"{SCRIPT} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"


COMMON = ["bootstrap", "git", "--context", CONTEXT]
PATH_ARGS = ["--branch", "main", "--path", "clusters/development"]


@pytest.mark.parametrize(
    ("url", "auth"),
    [
        ("http://git.example.test/gitops-whitepaper.git",
         ["--token-auth", "--username", "git", "--allow-insecure-http=true", "--silent", "--password", PASSWORD]),
        ("https://git.example.org/gitops-whitepaper.git",
         ["--token-auth", "--username", "git", "--silent", "--password", PASSWORD]),
    ],
    ids=["http", "https"],
)
def test_http_urls_use_token_auth(tmp_path: Path, url: str, auth: list[str]) -> None:
    proc = bootstrap(tmp_path, "development", "--context", CONTEXT, "--url", url, GIT_PASSWORD=PASSWORD)
    assert proc.returncode == 0, said(proc)
    assert flux_args(tmp_path) == [*COMMON, "--url", url, *PATH_ARGS, *auth], (
        f"{SCRIPT}: the flux command for {url} (see the case on the URL's scheme)\n" + said(proc)
    )
    assert PASSWORD not in proc.stdout + proc.stderr, f"{SCRIPT} printed the password\n" + said(proc)
    assert '--password "$GIT_PASSWORD"' in proc.stdout, said(proc)


def test_username_comes_from_git_username(tmp_path: Path) -> None:
    url = "https://git.example.org/gitops-whitepaper.git"
    proc = bootstrap(tmp_path, "development", "--context", CONTEXT, "--url", url,
                     GIT_PASSWORD=PASSWORD, GIT_USERNAME="robot")
    assert proc.returncode == 0, said(proc)
    args = flux_args(tmp_path) or []
    assert args[args.index("--username") + 1] == "robot", said(proc)


def test_ssh_url_uses_the_private_key_file(tmp_path: Path) -> None:
    key = tmp_path / "id_ed25519"
    key.write_text("not a real key; the fake flux does not read it\n", encoding="utf-8")
    url = "ssh://git@git.example.org/gitops-whitepaper.git"
    proc = bootstrap(tmp_path, "development", "--context", CONTEXT, "--url", url,
                     GIT_PRIVATE_KEY_FILE=str(key), GIT_PASSWORD=PASSWORD)
    assert proc.returncode == 0, said(proc)
    assert flux_args(tmp_path) == [*COMMON, "--url", url, *PATH_ARGS, "--private-key-file", str(key), "--silent"], (
        f"{SCRIPT}: the flux command for an ssh URL\n" + said(proc)
    )


def test_dry_run_prints_the_command_and_runs_nothing(tmp_path: Path) -> None:
    url = "http://git.example.test/gitops-whitepaper.git"
    proc = bootstrap(tmp_path, "staging", "--context", "kind-staging", "--url", url, "--dry-run",
                     contexts="kind-development kind-staging", GIT_PASSWORD=PASSWORD)
    assert proc.returncode == 0, said(proc)
    assert flux_args(tmp_path) is None, f"{SCRIPT} ran flux with --dry-run\n" + said(proc)
    printed = [line for line in proc.stdout.splitlines() if line.startswith("+ ")]
    assert printed == [
        f"+ {tmp_path / 'flux'} bootstrap git --context kind-staging --url {url} --branch main "
        "--path clusters/staging --token-auth --username git --allow-insecure-http=true --silent "
        '--password "$GIT_PASSWORD"'
    ], said(proc)


def test_branch_option_for_a_sandbox(tmp_path: Path) -> None:
    url = "https://git.example.org/gitops-whitepaper.git"
    proc = bootstrap(tmp_path, "development", "--context", CONTEXT, "--url", url, "--branch", "PLAT-1-work",
                     GIT_PASSWORD=PASSWORD)
    assert proc.returncode == 0, said(proc)
    args = flux_args(tmp_path) or []
    assert args[args.index("--branch") + 1] == "PLAT-1-work", said(proc)


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--context", "kind-production"], {"GIT_PASSWORD": PASSWORD},
         "no context 'kind-production' in the kubeconfig"),
        (["--context", CONTEXT], {}, "GIT_PASSWORD is not set"),
        (["--context", CONTEXT, "--url", "git@git.example.org:org/repo.git"], {"GIT_PASSWORD": PASSWORD},
         "--url must start with http://, https:// or ssh://"),
        (["--context", CONTEXT, "--url", "ssh://git@git.example.org/repo.git"], {},
         "GIT_PRIVATE_KEY_FILE is not set"),
        (["--url", "https://git.example.org/repo.git"], {"GIT_PASSWORD": PASSWORD}, "--context is required"),
    ],
    ids=["unknown-context", "no-password", "scp-like-url", "no-key", "no-context"],
)
def test_refusals(tmp_path: Path, args: list[str], env: dict[str, str], message: str) -> None:
    if "--url" not in args:
        args = [*args, "--url", "https://git.example.org/gitops-whitepaper.git"]
    proc = bootstrap(tmp_path, "development", *args, **env)
    assert proc.returncode == 1, said(proc)
    assert f"flux-bootstrap: {message}" in proc.stderr, said(proc)
    assert flux_args(tmp_path) is None, f"{SCRIPT} ran flux although it refused\n" + said(proc)


def test_unknown_cluster_directory_is_refused(tmp_path: Path) -> None:
    proc = bootstrap(tmp_path, "developmnt", "--context", CONTEXT, "--url", "https://git.example.org/r.git",
                     GIT_PASSWORD=PASSWORD)
    assert proc.returncode == 1 and "no cluster directory clusters/developmnt" in proc.stderr, said(proc)
    assert flux_args(tmp_path) is None, said(proc)


def test_context_check_with_the_real_kubectl(tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed: the context check against a real kubeconfig needs it")
    kubeconfig = tmp_path / "kubeconfig"
    subprocess.run([kubectl, "config", "set-context", CONTEXT, f"--kubeconfig={kubeconfig}"],
                   check=True, capture_output=True, timeout=60)
    url = "https://git.example.org/gitops-whitepaper.git"
    env = {"KUBECTL": kubectl, "KUBECONFIG": str(kubeconfig), "GIT_PASSWORD": PASSWORD}
    known = bootstrap(tmp_path, "development", "--context", CONTEXT, "--url", url, "--dry-run", **env)
    assert known.returncode == 0, said(known)
    other = bootstrap(tmp_path, "development", "--context", "kind-other", "--url", url, "--dry-run", **env)
    assert other.returncode == 1 and "no context 'kind-other'" in other.stderr, said(other)
