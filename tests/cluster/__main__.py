"""``python -m cluster --plan [--cluster kind]`` (with ``tests`` on the Python
path): print the cluster tier's command sequence. ``python -m cluster
--preflight`` says whether the tier can run here, and why not."""

from __future__ import annotations

import argparse
import sys

from . import preflight, tier


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cluster")
    parser.add_argument("--plan", action="store_true", help="print the command sequence")
    parser.add_argument("--preflight", action="store_true", help="can the tier run here?")
    parser.add_argument("--cluster", default="auto", metavar="PROVIDER",
                        help="kwok, kind, or auto (kind where Docker answers, else kwok)")
    args = parser.parse_args(argv)
    if args.cluster == "auto":
        args.cluster = preflight.default_provider()
    if args.preflight:
        found = preflight.check(provider=args.cluster)
        print(f"provider {args.cluster}: ", end="")
        print("cluster tier can run here" if found.ok else found.skip_reason())
        return 0
    if args.plan:
        sys.stdout.write(tier.build_plan(provider=args.cluster))
        return 0
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
