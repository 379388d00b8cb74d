"""The `rrd` command. Subcommands are discovered through the "rrd.commands" entry-point group, so `rrd eval` and
`rrd train` (defined in the eval and rft packages) are available without rrd importing the packages above it.

Each entry point is a function `register(subparsers)` that adds one subparser and sets `func` on it. Register
functions only declare flags; heavy imports (torch, datasets, trl) happen when a command runs, so `rrd --help`
stays fast.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from importlib.metadata import entry_points
from typing import Callable, Sequence

Register = Callable[[argparse._SubParsersAction], None]


def _registrations() -> list[tuple[str, Register]]:
    found = {ep.name: ep for ep in entry_points(group="rrd.commands")}
    regs: list[tuple[str, Register]] = []
    for name in sorted(found):
        try:
            regs.append((name, found[name].load()))
        except Exception as exc:  # one broken subcommand (a stale install, a missing extra) must not take all down
            print(f"warning: `rrd {name}` is unavailable: {type(exc).__name__}: {exc}", file=sys.stderr)
    if not regs:  # running from a source tree that was never pip-installed: at least our own commands
        from .commands import judge_command, refine_command

        regs = [("judge", judge_command), ("refine", refine_command)]
    return regs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rrd",
        description="Recursive Rubric Decomposition: refine rubrics, judge with them, evaluate, train.",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for _, register in _registrations():
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    from ..io import USER_ERRORS

    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as exc:  # bad input or output is the user's to fix: say where, without a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: results written so far are kept; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
