"""What every command shares: the parser that answers mistakes in one sentence, checked option values, the checkpoints
folder, and the signals that stop a run with its checkpoint saved."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from engine.errors import UserError
from engine.safe_io import describe_os_error

DEFAULT_CHECKPOINTS = "checkpoints"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one sentence and exit code 2 (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        message = re.sub(r"^argument (\S+): \1 ", r"\1 ", message)  # a setting's own sentence names its flag already
        raise UserError(f"{self.prog}: {message.rstrip('.')}; see '{self.prog} --help'.")


def number_option(kind: Callable[[str], Any], what: str) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{what} must be a {'whole number' if kind is int else 'number'}, not {text!r}"
            ) from None

    return convert


def checkpoints_folder(text: str, create: bool) -> Path:
    """The ``--checkpoints`` folder, made when ``create``; one sentence when it cannot be used."""
    if not text.strip():
        raise UserError("--checkpoints is empty; give the folder where runs are saved, such as ./checkpoints.")
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise UserError(f"--checkpoints {text!r} is not a folder; give a folder where runs are saved, such as ./checkpoints.")
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UserError(
                f"--checkpoints {text!r} cannot be made ({describe_os_error(error)}); give a folder you can write to."
            ) from None
        if not os.access(path, os.W_OK | os.X_OK):
            raise UserError(f"--checkpoints {text!r} is not writable; give a folder you can write to.")
    return path


class StopOnSignals:
    """While active, the first of SIGINT, SIGTERM or SIGHUP calls ``stop``; later ones are ignored.

    The run then ends after its current batch and saves its checkpoint; nothing can interrupt the
    save. ``received`` is the first signal's number (the exit code tells SIGHUP from the others).
    """

    def __init__(self, stop: Callable[[], None]):
        self.stop = stop
        self.previous: dict[int, Any] = {}
        self.received: int | None = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            return
        self.received = signum
        with contextlib.suppress(OSError):  # the terminal may be gone (SIGHUP)
            print("\nstopping after this batch; the checkpoint will be saved", file=sys.stderr)
        self.stop()

    def __enter__(self) -> StopOnSignals:
        for signum in STOP_SIGNALS:
            self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
