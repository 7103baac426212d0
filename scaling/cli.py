"""The ``scaling`` console command: one thin dispatcher.

Each room registers its own subcommands, and imports its heavy dependencies (torch, scipy,
submitit) only inside the handlers, so ``scaling --help`` is fast and ``scaling fit`` works
without torch:

- ``scaling train``                       -> ``scaling.train_cli``
- ``scaling prepare``                     -> ``scaling.prepare``
- ``scaling sweep {plan,launch,status}``  -> ``sweeps.cli``
- ``scaling fit | optimal | report``      -> ``analysis.cli``

Exit status, for every subcommand: 0 success; 1 the work ran but did not succeed (a diverged
run, a failed run in a sweep); 2 an expected failure (bad input, a path that is missing or of
the wrong kind, a full disk, a run locked by another process, a refused Slurm submission), as
ONE line on stderr naming the file, field or flag and the fix; 130 interrupted (Ctrl-C), with
what was saved and how to resume. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import shlex
import sys
from pathlib import Path
from typing import Any

from scaling import __version__

_ROOMS = ("scaling.train_cli", "scaling.prepare", "sweeps.cli", "analysis.cli")

# what to do about an OSError, by errno (the message already names the path)
_OS_HINTS = {
    errno.ENOENT: "check the path",
    errno.EISDIR: "give a file there, not a folder",
    errno.ENOTDIR: "a part of the path is a file where a folder is expected; fix the path",
    errno.EEXIST: "a file is in the way of a folder; move it or choose another path",
    errno.EACCES: "check the permissions",
    errno.EPERM: "check the permissions",
    errno.EROFS: "the file system is read-only; write somewhere else",
    errno.ENOSPC: "free some space and run the same command again (runs resume)",
    errno.EDQUOT: "free some space (quota) and run the same command again (runs resume)",
}


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """``--help`` shows each option's default (like ``ArgumentDefaultsHelpFormatter``).

    Unlike argparse's, it leaves out defaults that say nothing (``None``, ``False``, empty
    lists) and help that already states its default.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            action.help == argparse.SUPPRESS
            or default is argparse.SUPPRESS
            or default is None
            or default is False
            or default == []
            or "default" in text
            or not action.option_strings
        ):
            return action.help
        return f"{text} (default: %(default)s)".strip()


class RawDefaultsHelpFormatter(argparse.RawDescriptionHelpFormatter, DefaultsHelpFormatter):
    """``DefaultsHelpFormatter`` that keeps the description's own line breaks."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with a usage error in one line (the flag, the problem, where to look)."""

    def error(self, message: str) -> Any:  # noqa: D102
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _show_defaults(parser: argparse.ArgumentParser) -> None:
    # every (sub)parser shows its defaults, whichever room registered it
    if parser.formatter_class is argparse.RawDescriptionHelpFormatter:
        parser.formatter_class = RawDefaultsHelpFormatter
    elif parser.formatter_class is argparse.HelpFormatter:
        parser.formatter_class = DefaultsHelpFormatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _show_defaults(child)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every room's subcommands."""
    parser = ArgumentParser(
        prog="scaling",
        description="Scaling-law experiments on GPT-style transformers: train, sweep, fit, query.",
        epilog="Exit status: 0 ok, 1 ran but did not succeed, 2 bad input or an expected failure "
        "(one line on stderr), 130 interrupted (Ctrl-C; runs resume).",
    )
    parser.add_argument("--version", action="version", version=f"scaling {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _ROOMS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:  # a real missing dependency inside the room: surface it
                raise
            continue
        module.register(sub)
    _show_defaults(parser)
    return parser


def error_line(e: BaseException) -> str:
    """One line for an expected failure: the message, or for an ``OSError`` path + fix.

    ``OSError``s raised by the system (``FileNotFoundError``, ``IsADirectoryError``, a full
    disk) carry ``strerror`` and ``filename``; those with a message of our own keep it.
    """
    if isinstance(e, OSError) and e.strerror and e.filename is not None:
        where = str(e.filename) + (f" -> {e.filename2}" if e.filename2 is not None else "")
        hint = _OS_HINTS.get(e.errno or 0)
        text = f"{where}: {e.strerror}" + (f"; {hint}" if hint else "")
    elif isinstance(e, OSError) and e.strerror:  # an OSError with our own message
        text = e.strerror
    else:
        text = str(e) or type(e).__name__
    return " | ".join(line.strip() for line in text.strip().splitlines() if line.strip())


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse ``argv`` and run the chosen subcommand; returns the exit code.

    Expected failures (``ValueError`` and its subclasses such as ``ConfigError``,
    ``PlanError``, ``LaunchError``, ``CheckpointError``; any ``OSError``, e.g. a missing file,
    a file where a folder is expected, a full disk, ``RunLockedError``) print one line to stderr
    and return 2. Ctrl-C prints what was saved and how to resume (the subcommand's
    ``on_interrupt``) and returns 130.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    prog = f"scaling {args.command}"
    if getattr(args, "sweep_command", None):
        prog += f" {args.sweep_command}"
    try:
        rc = args.func(args)
    except KeyboardInterrupt:
        hook = getattr(args, "on_interrupt", None)
        again = shlex.join(["scaling", *argv])
        try:
            said = hook(args, again) if hook else f"nothing is lost that is on disk; rerun: {again}"
        except Exception as e:  # reading the run directory must not hide the interrupt
            said = f"(could not read what was saved: {error_line(e)}); rerun: {again}"
        print(f"{prog}: interrupted; {said}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and closed early: not an error
        sys.stderr.close()
        return 0
    except (ValueError, OSError) as e:
        print(f"{prog}: error: {error_line(e)}", file=sys.stderr)
        return 2
    return int(rc or 0)


def run_dir_interrupt_note(run_dir: Any, again: str) -> str:
    """What a run directory holds after an interrupt, and the command that resumes it."""
    from scaling import rundir

    state = rundir.run_state(run_dir)
    if state in ("complete", "diverged"):
        return f"the run in {run_dir} had already ended ({state}); nothing to resume"
    path = Path(run_dir) / rundir.CHECKPOINT
    if not path.exists():
        return f"no checkpoint was saved yet in {run_dir}; rerun to start from step 0: {again}"
    import torch

    # memory-mapped: only the step is read, even from a checkpoint of many GB
    step = torch.load(path, map_location="cpu", weights_only=True, mmap=True)["step"]
    return (
        f"{run_dir}/{rundir.CHECKPOINT} holds step {step} (rows after it are redone); "
        f"resume exactly with the same command: {again}"
    )


if __name__ == "__main__":
    sys.exit(main())
