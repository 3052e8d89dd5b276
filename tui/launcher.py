"""The ``lm-explorer`` console script: headless commands go to the engine's CLI, the rest opens the app.

``lm-explorer train|sweep|generate|runs|corpus-info …`` and ``--help`` run ``engine.cli`` without
importing Textual. ``lm-explorer`` alone, or ``lm-explorer tui``, opens the app; its options are
``--corpus PATH…``, ``--column``, ``--checkpoints DIR`` and ``--device``. A bad option is one
sentence on stderr and exit code 2, as on the CLI.
"""

from __future__ import annotations

import sys
from pathlib import Path

from engine.cli import COMMANDS, DEFAULT_CHECKPOINTS, EXIT_USER_ERROR, ArgumentParser, build_parser, checkpoints_folder
from engine.cli import main as cli_main
from engine.config import build_run_config
from engine.errors import UserError

APP_COMMAND = "tui"
HELP_EPILOG = ("With no command (or 'tui'), lm-explorer opens the terminal app on the embedded corpus; "
               "'lm-explorer tui --help' lists its options.")


def app_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="lm-explorer tui", description="Open the terminal app: train runs, watch them learn, compare their generations.")
    parser.add_argument("--corpus", nargs="+", metavar="PATH", help="a .txt, .csv or folder of them (default: the embedded Lee news corpus)")
    parser.add_argument("--column", help="the CSV column holding the text (default: headline, else the only text column)")
    parser.add_argument("--checkpoints", default=DEFAULT_CHECKPOINTS, metavar="DIR", help="where runs are saved and found (default ./checkpoints)")
    parser.add_argument("--device", default="auto", metavar="D", help="auto, cpu, cuda or cuda:N (default auto)")
    return parser


def print_help() -> None:
    """The CLI's help, with a line on what no command does."""
    parser = build_parser()
    parser.epilog = HELP_EPILOG
    parser.print_help()


def check_app_options(corpus: list[str] | None, checkpoints: str, device: str) -> None:
    """Refuse what the app could only report after it opened: missing corpus paths, a bad device or folder."""
    build_run_config("check", overrides={"train.device": device})
    for path in corpus or []:
        if not Path(path).expanduser().exists():
            raise UserError(f"Corpus path {path!r} does not exist; check the path given to --corpus.")
    if device.startswith("cuda"):  # only then is torch worth importing before the first frame
        from engine.trainer import resolve_device

        resolve_device(device)
    checkpoints_folder(checkpoints, create=True)  # last: it creates the folder


def main(argv: list[str] | None = None) -> int:
    """Dispatch: engine CLI for headless commands and help, the Textual app otherwise."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] and (args[0] in COMMANDS or args[0] in ("-h", "--help")):
        if args[0] in ("-h", "--help"):
            print_help()
            return 0
        return cli_main(args)
    if args[:1] == [APP_COMMAND]:
        args = args[1:]
    try:
        options = app_parser().parse_args(args)
        check_app_options(options.corpus, options.checkpoints, options.device)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR

    from tui.app import ExplorerApp

    app = ExplorerApp(corpus_paths=options.corpus, column=options.column, checkpoints=options.checkpoints, device=options.device)
    app.run()
    return app.return_code or 0


if __name__ == "__main__":
    sys.exit(main())
