"""Proof 4: every block a page marks ``<!-- test: cluster NAME -->`` runs, in
page order, against the cluster NAME.

Each page gets one scratch clone of the served snapshot, shared by its blocks
in order (a later block may rely on an earlier one). A block runs with
``bash -euo pipefail``, a temporary HOME, the pinned tools first on PATH and
``PLATFORM_GIT_URL``/``PLATFORM_OCI_URL`` exported as the pages ask (the
harness's git server and registry) and ``GIT_PASSWORD`` (the one the harness
bootstraps with; its git server takes any), ``KUBECONFIG`` set to a copy of the harness's kubeconfig for that cluster, in
which the context the pages use (``kind-NAME``) is an alias of the harness's
cluster (``kind-gwp-NAME``): a page's commands work as printed and still can
reach no cluster but the harness's own.
"""

from __future__ import annotations

import contextlib
import re
import shutil
from collections import OrderedDict
from pathlib import Path

from .. import names
from ..guard import RefusedContext
from ..plan import Step
from ..providers import Cluster

DEFAULT_TIMEOUT = 600
_CONTEXT_FLAG = re.compile(r"--context(?:=|\s+)([\w.@:/-]+)")
_KIND_LIFECYCLE = re.compile(r"\bkind\s+(create|delete)\s+cluster\b")

# What moves a branch or a tag of the served snapshot, in a block or in a
# procedure it runs (read from the script itself).
_PUSHES = re.compile(r"\bgit\b[^\n;&|]*\spush\b|\bflux\s+bootstrap\b")
_PROCEDURE = re.compile(r"(?<![\w/.-])(?:\./)?(snippets/[\w.-]+\.sh)\b")

# The stages of the page blocks' run that proofs run ahead wait for
# (``TierEnvironment.stage``): a proof that changes a long-lived cluster
# starts only once no block is left to run there, and one that pushes to the
# served snapshot only once no block is left that pushes (a reader's clone
# behind the branch could not push).
DONE_PUSHING = "the page blocks are done pushing to the served snapshot"


def done_with(target: str) -> str:
    """The stage at which no page block is left to run on ``target``."""
    return f"the page blocks are done with {target}"


def stages() -> list[str]:
    """Every stage of the page blocks' run."""
    return [*(done_with(t) for t in names.ALL_CLUSTERS), DONE_PUSHING]


def pushes(block, root: Path) -> bool:
    """Whether the block (or a procedure of snippets/ it runs, or one that
    runs) may push to the served snapshot: `git push`, `flux bootstrap`."""
    return _pushes_in(block.text, root, set())


def _pushes_in(text: str, root: Path, seen: set[str]) -> bool:
    if _PUSHES.search(text):
        return True
    for script in _PROCEDURE.findall(text):
        if script in seen:
            continue
        seen.add(script)
        path = root / script
        if path.is_file() and _pushes_in(path.read_text(encoding="utf-8", errors="replace"), root, seen):
            return True
    return False


def stage_points(blocks, root: Path) -> dict:
    """(page, index) of a block -> the stages the run reaches once that
    block is done; the key None holds those reached before the first
    (nothing of the pages runs on that cluster, or pushes)."""
    last: dict[str, tuple[str, int]] = {}
    for page_blocks in by_page(blocks).values():
        for block in page_blocks:
            last[done_with(block.options.get("cluster", ""))] = (block.page, block.index)
            if pushes(block, root):
                last[DONE_PUSHING] = (block.page, block.index)
    points: dict = {}
    for key in stages():
        points.setdefault(last.get(key), []).append(key)
    return points


def done(env) -> None:
    """The page blocks are over (run, failed, or not run at all): every
    proof that waits for them goes on."""
    env.reach(*stages())


@contextlib.contextmanager
def then_done(env):
    """``done(env)`` once the block inside is over, however it ended (a
    failure, a skip), except when the run itself is ending (Ctrl-C, a
    signal): then the proofs that wait must not start, and the teardown
    ends them."""
    try:
        yield
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:
        done(env)
        raise
    done(env)


def reader_context(target: str) -> str:
    """The context the pages use for a cluster (what kind names it)."""
    return f"kind-{target}"


def by_page(blocks) -> "OrderedDict[str, list]":
    """CLUSTER blocks grouped by page, pages and blocks in their order."""
    from harness.model import Mode

    pages: OrderedDict[str, list] = OrderedDict()
    for block in blocks:
        if block.mode is Mode.CLUSTER:
            pages.setdefault(block.page, []).append(block)
    for page in pages.values():
        page.sort(key=lambda b: b.index)
    return pages


def check_block(block, cluster: Cluster) -> None:
    """Refuse a block that would reach another cluster or make/delete one."""
    allowed = {cluster.context, reader_context(cluster.target)}
    for named in _CONTEXT_FLAG.findall(block.text):
        if named not in allowed:
            raise RefusedContext(
                f"{block.location()}: the block names --context {named}, but it runs against "
                f"{reader_context(cluster.target)} (<!-- test: cluster {cluster.target} -->); "
                "fix the context or the cluster in the comment"
            )
    if _KIND_LIFECYCLE.search(block.text):
        raise RefusedContext(
            f"{block.location()}: a `test: cluster` block must not create or delete clusters (the harness "
            "provides them); mark it `test: skip reason=...` or split it"
        )


def block_kubeconfig(env, cluster: Cluster, dest: Path) -> str:
    """A copy of the harness's kubeconfig with the pages' context name added."""
    path = dest / f"{cluster.target}.kubeconfig"
    if env.live:
        shutil.copyfile(cluster.kubeconfig, path)
    env.runner.run(Step(
        [env.tool("kubectl"), "config", "set-context", reader_context(cluster.target),
         f"--cluster={cluster.context}", f"--user={cluster.context}", f"--kubeconfig={path}"],
        note=f"alias {reader_context(cluster.target)} -> {cluster.context} in a copy of the harness's kubeconfig",
        timeout=30,
    ))
    return str(path)


# The password ``Provider.install_flux`` bootstraps with (--password); the
# harness's git server accepts any, the pages' bootstrap script requires one.


def exports(env) -> dict[str, str]:
    """The variables the pages tell a reader to export (docs/example/kind.md),
    set to the harness's own git server and registry."""
    from ..providers import mirror_variable

    endpoints = env.ensure_endpoints()
    mirrors = {mirror_variable(host).upper(): url for host, url in (endpoints.chart_mirrors or {}).items()}
    if mirrors:
        mirrors["OCI_MIRROR_INSECURE"] = "true"
    return {"PLATFORM_GIT_URL": endpoints.git_url, "PLATFORM_OCI_URL": endpoints.oci_url,
            "PLATFORM_OCI_INSECURE": "true", "GIT_PASSWORD": names.GIT_PASSWORD, **mirrors,
            # The run's throwaway release key, where the walkthrough keeps its own
            # ($HOME/platform-release-key/, copied into each page's HOME).
            "PLATFORM_RELEASE_KEY": endpoints.release_key or "", "COSIGN_PASSWORD": "",
            "COSIGN": env.tool("cosign"), "PLATFORM_RELEASE_NO_TLOG": "true"}


# What the pages tell a reader to export: in a transcript, the run's own
# values print under these names (harness.transcript), as the reader set them.
READER_VARIABLES = ("PLATFORM_GIT_URL", "PLATFORM_OCI_URL")


def run_values(env, home: Path) -> dict[str, str]:
    """This run's value -> the name a page shows in its place: the addresses
    the walkthrough has the reader export, and the page's HOME."""
    exported = exports(env)
    values = {exported[name]: "${%s}" % name for name in READER_VARIABLES if exported.get(name)}
    values[str(home)] = "${HOME}"
    return values


def save_transcript(env, block, output: str, values: dict[str, str]) -> Path:
    """What a block printed, as a page would show it (the run's own values
    under their names, timestamps, ages and hashes as placeholders), in
    ``artifacts/cluster/<stamp>-transcripts/``: the text to paste into the
    page's ``output`` block after a cluster block."""
    from harness import transcript

    from .. import artifacts

    folder = env.once("transcripts folder", lambda: artifacts.folder(env.root, "transcripts"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{block.page.replace('/', '-')}-{block.fence.line}.txt"
    path.write_text(transcript.as_page_shows(output, values), encoding="utf-8")
    return path


def clusters_named(blocks) -> set[str]:
    """The clusters the pages' cluster blocks run on."""
    return {b.options.get("cluster") for page in by_page(blocks).values() for b in page}


def block_cluster(env, target: str) -> Cluster:
    """The cluster a block runs on (the sandbox made the way the pages make
    it); raises as ``env.cluster`` does, or ``AlreadyFailed`` when Flux
    failed on it earlier in the run."""
    from .. import status

    if target in getattr(env, "failed", {}):
        raise status.AlreadyFailed(target, env.failed[target])
    if target == names.SANDBOX:
        from . import sandbox

        return sandbox.for_pages(env)
    return env.cluster(target)



_EXPORT = re.compile(r"^(?P<indent>\s*)export (?P<name>[A-Z_][A-Z0-9_]*)=(?P<value>\S+)(?P<rest>.*)$", re.M)


def with_readers_values(text: str, provided: dict[str, str]) -> tuple[str, list[str]]:
    """The block with each ``export NAME=value`` of a variable the page tells
    the reader to set (and the tier provides) given the tier's value instead
    of the page's placeholder; returns (text, the names replaced)."""
    replaced: list[str] = []

    def swap(match: re.Match) -> str:
        name = match["name"]
        if name not in provided:
            return match[0]
        replaced.append(name)
        return f'{match["indent"]}export {name}="${{{name}}}"{match["rest"]}'

    return _EXPORT.sub(swap, text), replaced


def install_release_key(env, home: Path) -> None:
    """The run's key pair in the walkthrough's place ($HOME/platform-release-key):
    the releases already published are signed with it, and the clusters
    verify with its public half."""
    if env.live:
        shutil.copytree(Path(env.release_key()).parent, home / "platform-release-key", dirs_exist_ok=True)


def made_for(env, blocks) -> list[Cluster]:
    """The clusters ``blocks`` run on, made (or found made); a cluster that
    cannot be made is left out, and reported at its first block."""
    made = []
    for target in dict.fromkeys(b.options.get("cluster") for b in blocks):
        try:
            made.append(block_cluster(env, target))
        except Exception:  # noqa: BLE001 - raised again, and reported, when its block runs
            pass
    return made


def fetch_now(env, clusters: list[Cluster]) -> None:
    """Each cluster's root source fetches its branch now, side by side. The
    clusters were bootstrapped one after another, and each bootstrap pushed
    a commit: a cluster bootstrapped early holds an older commit until its
    source's interval comes round, and a block that runs flux bootstrap
    again on it waits for that (up to a minute). A reader's cluster is
    bootstrapped by the block itself."""
    from . import flux_reconcile, side_by_side

    def fetch(cluster: Cluster) -> None:
        try:
            flux_reconcile(env, cluster, "source", "git", "flux-system")
        except Exception:  # noqa: BLE001 - a source that cannot fetch fails the block that needs it, at its line
            pass

    side_by_side(*(lambda c=c: fetch(c) for c in clusters), at_once=env.live)


def _paced(blocks, after):
    """``blocks`` in order, calling ``after(block)`` once each is done with
    (its turn of the loop ends, whatever it found)."""
    for block in blocks:
        yield block
        after(block)


def run_page(env, page: str, blocks, all_blocks=(), test: str = "", after=lambda block: None) -> list:
    """Run a page's cluster blocks in order; returns one finding per block
    and per transcript shown after one. After a block that failed or could
    not run, the page's later blocks are not run: they may rely on it.

    A failure of the tier's setup or of Flux on the block's cluster is a
    FAILED finding the first time it is met (``test`` reports it) and makes
    the block not run when another test reported it already. While a block
    runs, its cluster is watched: a Flux object that fails for good stops
    the block (a ``kubectl wait`` would wait out its timeout)."""
    from harness import transcript
    from harness.model import Finding, Mode, Outcome

    from .. import status, tier

    clone = env.checkout("page-" + page.replace("/", "-"))
    home = Path(env.work) / f"home-{page.replace('/', '-')}"
    if env.live:
        home.mkdir(parents=True, exist_ok=True)
        # A reader's git has an identity; the pages commit (a production pin).
        (home / ".gitconfig").write_text("[user]\n\tname = docs-test reader\n"
                                         "\temail = reader@gitops-whitepaper.invalid\n", encoding="utf-8")
    following = {(b.page, b.index): b for b in all_blocks if b.mode is Mode.OUTPUT}
    findings: list = []
    stopped = None  # why the rest of the page does not run

    def not_compared(block, why: str) -> None:
        shown = following.get((block.page, block.index + 1))
        if shown is not None:
            findings.append(Finding("output", Outcome.SKIPPED, shown.location(0), f"not compared: {why}", shown))

    for block in _paced(blocks, after):
        if stopped is not None:
            findings.append(Finding("cluster", Outcome.SKIPPED, block.location(0), f"not run: {stopped}", block))
            not_compared(block, "its block did not run")
            continue
        try:
            cluster = block_cluster(env, block.options["cluster"])
        except Exception as error:  # noqa: BLE001 - setup or Flux failures are findings here
            if not tier.reported_once(error):
                raise
            reason = tier.not_run_reason(error)
            if reason is None:
                tier.mark_reported(error, test)
                findings.append(Finding("cluster", Outcome.FAILED, block.location(0),
                                        f"cannot run on {block.options['cluster']}: {tier.first_cause(error)}", block))
            else:
                findings.append(Finding("cluster", Outcome.SKIPPED, block.location(0), reason, block))
            stopped = f"the block at {block.location(0)} could not run"
            not_compared(block, "its block did not run")
            continue
        check_block(block, cluster)
        kubeconfig = block_kubeconfig(env, cluster, Path(env.work))
        timeout = float(block.options.get("timeout", DEFAULT_TIMEOUT))
        makes_key = "generate-key-pair" in block.text
        if makes_key and env.live:
            # The page makes its own pair where the run's copy lies: as for
            # a reader, the folder holds no pair yet.
            for name in ("cosign.key", "cosign.pub"):
                (home / "platform-release-key" / name).unlink(missing_ok=True)
        elif not makes_key:
            install_release_key(env, home)
        provided = exports(env)
        text, replaced = with_readers_values(block.text, provided)
        watch = status.FluxWatch(cluster, env.runner, env.tool("kubectl"), locator=getattr(env, "locator", None),
                                 failed=getattr(env, "failed", None)) if env.live else None
        try:
            proc = env.runner.run(Step(
                ["bash", "-euo", "pipefail", "-c", text],
                note=f"{block.location()}: cluster block on {cluster.target}",
                cwd=str(clone),
                env={"HOME": str(home), "PATH": env.tool_path(), "KUBECONFIG": kubeconfig, **provided},
                timeout=timeout,
            ), check=False, while_waiting=watch.check if watch else None)
        except (status.FluxFailed, status.AlreadyFailed) as error:
            reason = tier.not_run_reason(error)
            tier.mark_reported(error, test)
            findings.append(Finding("cluster", Outcome.FAILED, block.location(0),
                                    f"stopped on {cluster.target}: {reason or tier.first_cause(error)}", block))
            stopped = f"the block at {block.location(0)} failed first"
            not_compared(block, "its block failed")
            continue
        if not env.live:
            continue
        if proc.returncode != 0:
            out = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
            stopped = f"the block at {block.location(0)} on this page failed first"
            findings.append(Finding(
                "cluster", Outcome.FAILED, block.location(0),
                f"failed on {cluster.target} (exit {proc.returncode}):\n{out}\n"
                "Rerun with --keep-cluster and try it with the KUBECONFIG printed above.", block))
            not_compared(block, "its block failed")
            continue
        save_transcript(env, block, proc.stdout, run_values(env, home))
        note = f"ran on {cluster.target}"
        if replaced:
            note += f"; the tier's values for {', '.join(replaced)}"
        if makes_key and env.live:
            # The releases the tier has published already are signed with the
            # run's pair, which takes the place of the one the page made.
            made = (home / "platform-release-key" / "cosign.pub").is_file()
            install_release_key(env, home)
            note += ("; it made its key pair, then replaced by the run's, which signed the releases already "
                     "published" if made else "; it made no key pair")
        findings.append(Finding("cluster", Outcome.PASSED, block.location(0), note, block))
        shown = following.get((block.page, block.index + 1))
        if shown is not None:
            findings.append(transcript.compare(shown, proc.stdout, run_values(env, home)))
    return findings


def run(env, blocks, test: str = "") -> list:
    """Run every cluster block, page by page; returns the findings.

    Every cluster a block runs on is bootstrapped before the first page's
    clone is made: bootstrap pushes its sync commit to the branch, and a
    clone made before that push is behind it (a block's `git push` is then
    rejected). As the blocks run, the run reaches the stages the proofs run
    ahead wait for (``stage_points``); all of them at the end, however the
    blocks ended."""
    findings: list = []
    points = stage_points(blocks, Path(env.root))
    env.reach(*points.get(None, []))

    def after(block) -> None:
        env.reach(*points.get((block.page, block.index), []))

    with then_done(env):
        fetch_now(env, made_for(env, blocks))
        for page, page_blocks in by_page(blocks).items():
            findings.extend(run_page(env, page, page_blocks, blocks, test, after))
    return findings
