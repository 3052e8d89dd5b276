"""Run a command and write its peak RSS in bytes to a file: ``python -m bench.peak_rss OUT COMMAND…``.

Linux carries a process's peak RSS (``ru_maxrss``) into the processes it forks and across
``exec``, so a command started straight from the benchmark process would report at least the
benchmark's own peak. This shim is small: the command it forks starts from the shim's peak, not
the benchmark's, and ``os.wait4`` gives the command's own. SIGINT is passed on to the command;
the shim exits with the command's exit code.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


def main(out: str, command: list[str]) -> int:
    child = subprocess.Popen(command)
    signal.signal(signal.SIGINT, lambda *_: os.kill(child.pid, signal.SIGINT))
    _, status, usage = os.wait4(child.pid, 0)
    Path(out).write_text(str(usage.ru_maxrss * 1024))
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
