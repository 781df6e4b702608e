"""Find a tool, or build it into the cache, and say where it came from.

Lookup order for a binary: the per-user cache (the pinned version, built
here), then the project's ``.tools/bin``, then ``PATH``.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from . import builders, cache, gomod
from .pins import PROJECT_ROOT, for_tier, tool_for_binary, tools, versions
from .recipes import Build, Tool

LOCAL_BIN = ".tools/bin"


def find_binary(name: str, root: Path = PROJECT_ROOT) -> str | None:
    """The path of ``name``: the cache's pinned build, ``.tools/bin``, PATH."""
    tool = _tool(name, root)
    if tool is not None and cache.record(tool) is not None:
        return str(cache.binary(tool, name))
    local = Path(root) / LOCAL_BIN / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which(name)


def _tool(binary: str, root: Path) -> Tool | None:
    try:
        return tool_for_binary(binary, root)
    except gomod.BuildError:
        # The version of a Flux controller is read from flux2's source: with
        # no Go and nothing cached it cannot be known, so it is not cached.
        return None


@dataclass
class Outcome:
    tool: Tool
    where: str  # the folder of its binaries, or '' when missing
    how: str  # "cached", "built in 123 s", or why it is missing
    ok: bool


def ensure(tool: Tool, root: Path = PROJECT_ROOT, rebuild: bool = False) -> Outcome:
    """The tool from the cache, else built into it."""
    if not rebuild and cache.record(tool) is not None:
        built = cache.record(tool) or {}
        return Outcome(tool, str(cache.entry(tool) / "bin"),
                       f"cached (built {built.get('built_at', '?')} in {built.get('seconds', '?')} s)", True)
    try:
        gomod.go()
    except gomod.BuildError as error:
        return Outcome(tool, "", str(error), False)
    needs = {}
    for name in tool.needs:
        needed = tools(root).get(name)
        if needed is None or cache.record(needed) is None:
            return Outcome(tool, "", f"needs {name}, which is not built: run `nox -s tools -- {name}` first", False)
        needs[name] = cache.entry(needed) / "bin"
    cache.discard_stale_scratch()
    out = cache.scratch(tool)
    log = out / "build.log"
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix=f"gwp-build-{tool.name}-"))
    try:
        build = Build(out=out, work=work, log=log, root=Path(root), needs=needs, settings=versions(Path(root)))
        details = builders.builder(tool)(tool, build)
        seconds = round(time.monotonic() - started, 1)
        for binary in tool.binaries:
            if not (out / "bin" / binary).is_file():
                raise gomod.BuildError(f"{tool.name}: the build did not produce bin/{binary}")
        details.update(tool=tool.name, version=tool.version, seconds=seconds, binaries=list(tool.binaries),
                       built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        final = cache.commit(tool, out, details)
        return Outcome(tool, str(final / "bin"), f"built in {seconds:.0f} s ({details['source']})", True)
    except gomod.BuildError as error:
        kept = cache.tools_root() / tool.name / f"{tool.version}.failed.log"
        if log.exists():
            shutil.copy(log, kept)
        shutil.rmtree(out, ignore_errors=True)
        where = f"{pinned_at(tool, root)}: " if isinstance(error, gomod.ModuleVersionError) else ""
        return Outcome(tool, "", f"{where}{error}\n    full log: {kept}", False)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def pinned_at(tool: Tool, root: Path = PROJECT_ROOT) -> str:
    """``versions.yaml:N``, the line that pins the tool's version (the
    tool's own ``version:``, else ``flux.version`` for what Flux bundles)."""
    lines = (Path(root) / "versions.yaml").read_text(encoding="utf-8").split("\n")
    section, flux_version = None, None
    for number, line in enumerate(lines, 1):
        if line and not line.startswith((" ", "#")):
            section = line.split(":", 1)[0]
        elif section == "flux" and line.startswith("  version:"):
            flux_version = number
        elif section == "tools" and line.strip() == f"{tool.name}:":
            for later in range(number, len(lines)):
                if lines[later] and not lines[later].startswith("    "):
                    break
                if lines[later].strip().startswith("version:"):
                    return f"versions.yaml:{later + 1}"
    return f"versions.yaml:{flux_version}" if flux_version else "versions.yaml"


def selected(names: list[str], tier: str | None, root: Path = PROJECT_ROOT) -> list[Tool]:
    known = tools(root)
    if names:
        unknown = [n for n in names if n not in known]
        if unknown:
            raise SystemExit(f"unknown tool(s) {', '.join(unknown)}; versions.yaml pins: {', '.join(known)}")
        chosen = [known[n] for n in names]
    elif tier:
        chosen = for_tier(tier, root)
    else:
        chosen = list(known.values())
    return in_build_order(chosen, known)


def in_build_order(chosen: list[Tool], known: dict[str, Tool]) -> list[Tool]:
    """``chosen`` with every tool after the tools it needs (adding those it
    needs that were not chosen), otherwise in versions.yaml order."""
    order: list[Tool] = []

    def add(tool: Tool, path: tuple[str, ...] = ()) -> None:
        if tool in order:
            return
        if tool.name in path:
            raise SystemExit(f"versions.yaml: {' -> '.join((*path, tool.name))}: tools that need each other")
        for name in tool.needs:
            if name not in known:
                raise SystemExit(f"versions.yaml tools.{tool.name}.needs: {name} is not a tool")
            add(known[name], (*path, tool.name))
        order.append(tool)

    for tool in sorted(chosen, key=lambda t: list(known).index(t.name) if t.name in known else len(known)):
        add(tool)
    return order


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="nox -s tools --", description=(
        "Build the tools versions.yaml pins into the per-user cache "
        f"({cache.tools_root()}), or find them there."))
    parser.add_argument("names", nargs="*", help="tools to build (default: every tool, or those of --tier)")
    parser.add_argument("--tier", choices=["offline", "kind", "kwok"], help="only the tools this tier needs")
    parser.add_argument("--rebuild", action="store_true", help="build again even if cached")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    failed = 0
    for tool in selected(args.names, args.tier):
        if args.rebuild or cache.record(tool) is None:
            print(f"{tool.name:24} {tool.version:10} building from source ...", flush=True)
        outcome = ensure(tool, rebuild=args.rebuild)
        failed += not outcome.ok
        mark = "" if outcome.ok else "MISSING: "
        print(f"{tool.name:24} {tool.version:10} {mark}{outcome.how}" + (f"\n{'':36}{outcome.where}" if outcome.ok else ""),
              flush=True)
        if not outcome.ok:
            print(f"{'':36}its checks are skipped with this reason; nothing else depends on it", flush=True)
    print(f"{'':36}({time.monotonic() - started:.1f} s in all)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
