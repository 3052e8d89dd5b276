"""Measure 6, start-up: process start → ``lm-explorer --help`` output, and → the app's first painted frame.

``--help``: wall time from spawning the console script to its exit with the help text read.
Baseline: the same interpreter running nothing (``python -c pass``).

First frame: ``lm-explorer`` with no command (``python -m tui.launcher``, what the console
script runs) opens the app on a pseudo-terminal of 80 × 24; the time runs from spawning it to
reading its first full-screen write, recognized by the cursor move to the last row
(``ESC[24;1H``) that Textual emits for every line of a full frame. Baseline: an empty Textual app
(:mod:`bench.empty_app`) measured the same way. Target: first frame ≤ 1.5 s. Each is the median of repetitions, alternating with its baseline's.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

from bench.context import Bench
from bench.table import Row, seconds, skipped
from bench.timing import paired_medians
from bench.tui_harness import tui_available
from bench.workloads import REPO

MEASURE = "6 start-up"
ROWS, COLUMNS = 24, 80
LAST_ROW = f"\x1b[{ROWS};1H".encode()
FRAME_TIMEOUT = 30.0
FIRST_FRAME_TARGET = 1.5


def measure(bench: Bench) -> list[Row]:
    repeats = bench.pick(2, 5)
    console_script = Path(sys.executable).with_name("lm-explorer")
    help_time, bare = paired_medians(
        lambda: _run_to_exit([str(console_script), "--help"]), lambda: _run_to_exit([sys.executable, "-c", "pass"]), repeats
    )
    rows = [
        Row(
            "–",
            f"{MEASURE}: process start → lm-explorer --help output",
            seconds(help_time),
            f"{seconds(bare)} (python -c pass)",
            help_time / bare,
        )
    ]
    measure_name = f"{MEASURE}: process start → first painted frame of the app"
    if not tui_available():
        return [*rows, skipped("–", measure_name, "tui.app not available")]
    app, empty = paired_medians(
        lambda: first_frame(["tui.launcher", "--checkpoints", str(bench.checkpoints)]),
        lambda: first_frame(["bench.empty_app"]),
        repeats,
    )
    rows.append(
        Row(
            "–",
            measure_name,
            seconds(app),
            f"{seconds(empty)} (empty Textual app)",
            app / empty,
            f"≤ {FIRST_FRAME_TARGET} s",
            app <= FIRST_FRAME_TARGET,
        )
    )
    return rows


def _run_to_exit(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def first_frame(module: list[str]) -> float:
    """Seconds from spawning ``python -m MODULE [ARGS]`` on a pseudo-terminal to reading its first full frame."""
    with app_on_pty(module) as (_, _, seconds_to_frame):
        return seconds_to_frame


@contextlib.contextmanager
def app_on_pty(module: list[str]) -> Iterator[tuple[subprocess.Popen[bytes], int, float]]:
    """``python -m MODULE [ARGS]`` on a pseudo-terminal, once it painted its first full frame: the process, the
    terminal's reading end (keep reading it, or the app blocks on a full terminal) and the seconds to that frame."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color"}
    start = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", *module], stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True, cwd=REPO
    )
    os.close(slave)
    seen = b""
    try:
        while time.perf_counter() - start < FRAME_TIMEOUT:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if child.poll() is not None:
                    break
                continue
            try:
                seen = seen[-16:] + os.read(master, 65536)
            except OSError:
                break
            if LAST_ROW in seen:
                yield child, master, time.perf_counter() - start
                return
        raise RuntimeError(f"python -m {module[0]} painted no frame within {FRAME_TIMEOUT:g} s (exit code {child.poll()})")
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGTERM)
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
        os.close(master)
