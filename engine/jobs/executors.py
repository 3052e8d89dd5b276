"""Which executor trains a sweep's jobs: the ``--executor`` and ``--address`` options, defined once here for ``sweep``,
``reproduce``, the app and the detached runner, and the executor they name."""

from __future__ import annotations

import argparse
import importlib.util

from engine.errors import UserError
from engine.jobs.executor import Executor, LocalExecutor

EXECUTORS = ("local", "ray")
AUTO_ADDRESS = "auto"


def add_executor_options(parser: argparse.ArgumentParser) -> None:
    """``--executor local|ray`` and ``--address auto|HOST:PORT``."""
    parser.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="local",
        help="local: trainer processes on this machine (default); ray: Ray tasks on a cluster's nodes, "
        "which must all mount the same --checkpoints folder at the same path",
    )
    parser.add_argument(
        "--address",
        metavar="auto|HOST:PORT",
        help="the Ray cluster, with --executor ray (default auto: the one 'ray start' runs on this machine)",
    )


def check_address(text: str) -> str:
    """``auto`` or ``HOST:PORT`` (a port from 1 to 65535), else the sentence naming it."""
    host, _, port = text.rpartition(":")
    if text == AUTO_ADDRESS or (host and port.isdigit() and 1 <= int(port) <= 65535):
        return text
    raise UserError(f"--address {text!r} is not auto or HOST:PORT; give the Ray head's address, such as 10.0.0.5:6379.")


def executor_for(name: str, address: str | None) -> Executor:
    """The executor ``--executor`` names; Ray is imported only once a job is placed (so the app stays light)."""
    if name == "local":
        if address is not None:
            raise UserError("--address names a Ray cluster; give it with --executor ray.")
        return LocalExecutor()
    if importlib.util.find_spec("ray") is None:
        raise UserError("--executor ray needs Ray, which is not installed; install it with pip install 'lm-explorer[cluster]'.")
    from engine.jobs.ray_executor import RayExecutor

    return RayExecutor(check_address(address or AUTO_ADDRESS))
