"""The ``scaling`` console command: one thin dispatcher.

Each room registers its own subcommands, and imports its heavy dependencies (torch, scipy,
submitit) only inside the handlers, so ``scaling --help`` is fast and ``scaling fit`` works
without torch:

- ``scaling train``                       -> ``scaling.train_cli``
- ``scaling prepare``                     -> ``scaling.prepare``
- ``scaling sweep {plan,launch,status}``  -> ``sweeps.cli``
- ``scaling fit | optimal | report``      -> ``analysis.cli``
"""

from __future__ import annotations

import argparse
import importlib
import sys

_ROOMS = ("scaling.train_cli", "scaling.prepare", "sweeps.cli", "analysis.cli")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every room's subcommands."""
    parser = argparse.ArgumentParser(
        prog="scaling",
        description="Scaling-law experiments on GPT-style transformers: train, sweep, fit, query.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _ROOMS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:  # a real missing dependency inside the room: surface it
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse ``argv`` and run the chosen subcommand; returns the exit code.

    Errors a user can fix (``ValueError`` subclasses raised for bad input) print one line to
    stderr and exit with status 2 instead of a traceback.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc = args.func(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"scaling {args.command}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and closed early: not an error
        sys.stderr.close()
        return 0
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
