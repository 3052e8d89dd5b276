"""The headless commands: train, sweep, generate, runs, compare, stop, delete, rename, corpus-info, reproduce.

Each group of commands is a module of this package with its ``add_parsers`` and ``cmd_*``
functions; this one assembles them. Mistakes in the input, and faults of the disk (full,
read-only, no permission), end with one sentence on stderr and exit code 2; the other exit codes
are :mod:`engine.exit_codes`'. Signals that arrive while a run stops are ignored until its
checkpoint is saved.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from engine.cli import compare, corpus, generate, manage, reproduce, runs, train
from engine.cli.common import ArgumentParser
from engine.errors import UserError
from engine.exit_codes import EXIT_BROKEN_PIPE, EXIT_STOPPED, EXIT_USER_ERROR

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "train": train.cmd_train,
    "sweep": train.cmd_sweep,
    "generate": generate.cmd_generate,
    "runs": runs.cmd_runs,
    "stop": runs.cmd_stop,
    "delete": manage.cmd_delete,
    "rename": manage.cmd_rename,
    "corpus-info": corpus.cmd_corpus_info,
    "reproduce": reproduce.cmd_reproduce,
    "compare": compare.cmd_compare,
}


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="lm-explorer", description="Train word-level LSTM language models under entropy-based objectives, and compare them."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    for group in (train, runs, compare, manage, generate, corpus, reproduce):
        group.add_parsers(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 0
        return COMMANDS[args.command](args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        return EXIT_STOPPED
    except BrokenPipeError:
        return reader_gone()


def reader_gone() -> int:
    """The output's reader went away (``lm-explorer runs | head``): end quietly, as a tool SIGPIPE ends.

    stdout then points at the null device, so that the interpreter's final flush has nowhere to fail.
    """
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_BROKEN_PIPE
