"""The ``lm-explorer`` console script: headless commands go to the engine's CLI, the rest opens the app.

``lm-explorer train|sweep|generate|runs|corpus-info …`` and ``--help`` run ``engine.cli.main`` without
importing Textual. ``lm-explorer`` alone, or ``lm-explorer tui``, opens the app; its options are
``--corpus PATH…``, ``--column``, ``--checkpoints DIR``, ``--device`` and ``--executor``/``--address`` (runs it
starts train on a Ray cluster). ``lm-explorer serve``
serves the same app to a web browser (textual-serve, the ``serve`` extra, guarded by a token and an
Origin check in ``tui.web_server``): each browser tab that connects gets its own app process. A bad
option is one sentence on stderr and exit code 2, as on the CLI.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from engine.cli.common import DEFAULT_CHECKPOINTS, ArgumentParser, checkpoints_folder
from engine.cli.main import COMMANDS, build_parser
from engine.cli.main import main as cli_main
from engine.config.presets import build_run_config
from engine.errors import UserError
from engine.exit_codes import EXIT_USER_ERROR
from engine.jobs.executor import Executor
from engine.jobs.executors import add_executor_options, executor_for

APP_COMMAND = "tui"
SERVE_COMMAND = "serve"
HELP_EPILOG = (
    "With no command (or 'tui'), lm-explorer opens the terminal app on the embedded corpus; "
    "'lm-explorer tui --help' lists its options. 'lm-explorer serve' serves the same app to a web browser "
    "on localhost, for an SSH port-forward, behind a token printed at start ('lm-explorer serve --help')."
)
SERVE_DESCRIPTION = (
    "Serve the app to a web browser (textual-serve): each browser tab gets its own app on the same checkpoints "
    "folder. By default it listens on 127.0.0.1 only. At start it prints the address to open, with a random token "
    "(http://127.0.0.1:8000/?token=...): the page and its WebSocket refuse requests without that token, and the "
    "WebSocket refuses other web sites' pages (Origin check). What still holds: anyone who has the address with "
    "the token controls the app and can start, stop and delete runs, and the connection is plain HTTP (no TLS), "
    "readable on the network. Use it over an SSH port-forward "
    "(ssh -L 8000:localhost:8000 gpu-box, then open the printed address); never give --host 0.0.0.0 "
    "on a network you do not trust."
)


def app_parser(
    prog: str = "lm-explorer tui",
    description: str = "Open the terminal app: train runs, watch them learn, compare their generations.",
) -> ArgumentParser:
    parser = ArgumentParser(prog=prog, description=description)
    parser.add_argument(
        "--corpus", nargs="+", metavar="PATH", help="a .txt, .csv or folder of them (default: the embedded Lee news corpus)"
    )
    parser.add_argument("--column", help="the CSV column holding the text (default: headline, else the only text column)")
    parser.add_argument(
        "--checkpoints", default=DEFAULT_CHECKPOINTS, metavar="DIR", help="where runs are saved and found (default ./checkpoints)"
    )
    parser.add_argument("--device", default="auto", metavar="D", help="auto, cpu, cuda or cuda:N (default auto)")
    add_executor_options(parser)
    return parser


def print_help() -> None:
    """The CLI's help, with a line on what no command does."""
    parser = build_parser()
    parser.epilog = HELP_EPILOG
    parser.print_help()


def check_app_options(options: argparse.Namespace) -> Executor:
    """Refuse what the app could only report after it opened: missing corpus paths, a bad device, folder or executor;
    the executor its runs train on."""
    corpus, checkpoints, device = options.corpus, options.checkpoints, options.device
    executor = executor_for(options.executor, options.address)
    build_run_config("check", overrides={"train.device": device})
    for path in corpus or []:
        if not Path(path).expanduser().exists():
            raise UserError(f"Corpus path {path!r} does not exist; check the path given to --corpus.")
    if device.startswith("cuda"):  # only then is torch worth importing before the first frame
        from engine.training.trainer import resolve_device

        resolve_device(device)
    checkpoints_folder(checkpoints, create=True)  # last: it creates the folder
    return executor


def serve_parser() -> ArgumentParser:
    parser = app_parser("lm-explorer serve", SERVE_DESCRIPTION)
    parser.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="the port to listen on (default 8000)")
    parser.add_argument(
        "--public-url",
        metavar="URL",
        help="the address the browser uses, when it differs (a port-forward to another port: http://localhost:9000)",
    )
    parser.add_argument(
        "--token",
        help="the token to require (default: a new random one; one given here shows in ps to other users of the machine)",
    )
    return parser


def app_command(options: argparse.Namespace) -> str:
    """The shell command that opens the app with ``options`` (what the web server runs per browser tab)."""
    command = [
        sys.executable,
        "-m",
        "tui.launcher",
        APP_COMMAND,
        "--checkpoints",
        options.checkpoints,
        "--device",
        options.device,
        *executor_for(options.executor, options.address).options(),
    ]
    if options.corpus:
        command += ["--corpus", *options.corpus]
    if options.column:
        command += ["--column", options.column]
    return shlex.join(command)


def serve(args: list[str]) -> int:
    """``lm-explorer serve``: the app in a web browser, until Ctrl-C or SIGTERM."""
    options = serve_parser().parse_args(args)
    if not 1 <= options.port <= 65535:
        raise UserError(f"--port {options.port} is not a port; give a number from 1 to 65535, such as 8000.")
    check_app_options(options)
    try:
        import textual_serve.server  # noqa: F401  (the serve extra)
    except ImportError:
        raise UserError(
            "lm-explorer serve needs textual-serve, which is not installed; install it with pip install 'lm-explorer[serve]'."
        ) from None
    from tui.web_server import GuardedServer, check_token, new_token

    token = check_token(options.token) if options.token is not None else new_token()
    server = GuardedServer(
        app_command(options),
        token=token,
        host=options.host,
        port=options.port,
        title="lm-explorer",
        public_url=options.public_url,
    )
    print(
        f"Open {server.url()}\n"
        "Whoever has this address controls the app (plain HTTP, no TLS): "
        "keep it on localhost and reach it through an SSH port-forward.",
        file=sys.stderr,
        flush=True,
    )
    try:
        server.serve()
    except OSError as error:
        raise UserError(
            f"Cannot listen on {options.host}:{options.port} ({error.strerror or error}); "
            "give --port another number, or stop what uses it."
        ) from None
    return 0


def main(argv: list[str] | None = None) -> int:
    """Dispatch: engine CLI for headless commands and help, the web server for serve, the Textual app otherwise."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] and (args[0] in COMMANDS or args[0] in ("-h", "--help")):
        if args[0] in ("-h", "--help"):
            print_help()
            return 0
        return cli_main(args)
    if args[:1] == [SERVE_COMMAND]:
        try:
            return serve(args[1:])
        except UserError as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_USER_ERROR
    if args[:1] == [APP_COMMAND]:
        args = args[1:]
    try:
        options = app_parser().parse_args(args)
        executor = check_app_options(options)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR

    from tui.app import ExplorerApp

    app = ExplorerApp(
        corpus_paths=options.corpus,
        column=options.column,
        checkpoints=options.checkpoints,
        device=options.device,
        executor=executor,
    )
    app.run()
    return app.return_code or 0


if __name__ == "__main__":
    sys.exit(main())
