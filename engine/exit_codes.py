"""Process exit codes, the same for every command and trainer process, and the one status → exit code mapping.

0 finished; 1 an internal failure; 2 a mistake in the input or a fault of the disk (one sentence on
stderr); 3 the run diverged; 130 stopped by Ctrl-C or SIGTERM (128 + SIGINT), 129 by SIGHUP (the
terminal went away), each after saving its checkpoint; 141 the reader of the output went away
(``lm-explorer runs | head``), the code of a tool ended by SIGPIPE, without a traceback.
"""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USER_ERROR = 2
EXIT_DIVERGED = 3
EXIT_HANGUP = 129
EXIT_STOPPED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE


def exit_code(status: str | None, hangup: bool = False) -> int:
    """The exit code a run's final status calls for (``hangup``: it was stopped by SIGHUP); unknown statuses fail."""
    if status == "stopped":
        return EXIT_HANGUP if hangup else EXIT_STOPPED
    return {"finished": EXIT_OK, "diverged": EXIT_DIVERGED}.get(status or "failed", EXIT_FAILED)
