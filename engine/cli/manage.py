"""``lm-explorer delete RUN [--yes]`` and ``lm-explorer rename RUN NEW`` (the work is :mod:`engine.runs.manage`'s)."""

from __future__ import annotations

import argparse
import sys

from engine.cli.common import DEFAULT_CHECKPOINTS, ArgumentParser, checkpoints_folder
from engine.errors import UserError
from engine.runs.manage import delete_run, describe, rename_run, run_folder


def add_parsers(commands: argparse._SubParsersAction[ArgumentParser]) -> None:
    """The ``delete`` and ``rename`` subcommands."""

    delete = commands.add_parser(
        "delete",
        help="delete a run and its folder",
        description="Delete a run that is not training: its checkpoint, metrics and folder. "
        "Asks first unless --yes; refuses a folder holding files lm-explorer did not write.",
    )
    delete.add_argument("run", metavar="RUN")
    delete.add_argument("--yes", action="store_true", help="do not ask (needed when stdin is not a terminal)")
    delete.add_argument("--checkpoints", default=DEFAULT_CHECKPOINTS, metavar="DIR")

    rename = commands.add_parser(
        "rename", help="rename a run", description="Rename a run that is not training (its folder is its name)."
    )
    rename.add_argument("run", metavar="RUN")
    rename.add_argument("new", metavar="NEW")
    rename.add_argument("--checkpoints", default=DEFAULT_CHECKPOINTS, metavar="DIR")


def cmd_delete(args: argparse.Namespace) -> int:
    checkpoints = checkpoints_folder(args.checkpoints, create=False)
    if not args.yes:
        what = describe(run_folder(checkpoints, args.run))
        if not sys.stdin.isatty():
            raise UserError(f"Deleting run {args.run!r} ({what}) cannot be undone; give --yes to delete it without asking.")
        answer = input(f"Delete run {args.run!r} ({what})? This cannot be undone. [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print(f"Run {args.run!r} is kept.")
            return 0
    print(delete_run(checkpoints, args.run))
    return 0


def cmd_rename(args: argparse.Namespace) -> int:
    print(rename_run(checkpoints_folder(args.checkpoints, create=False), args.run, args.new))
    return 0
