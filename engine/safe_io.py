"""File access for places lm-explorer does not control: run folders and corpus files.

A run folder may come from anywhere (a colleague's copy, an archive, another box), so nothing in
it is trusted: every file is opened without following symbolic links and must be a regular file
(a FIFO, a device or a directory in its place is refused before it can block or flood a read),
reads are bounded before anything is allocated, and writes go to a temporary file beside the
target that is then renamed over it. Every refusal is a :class:`~engine.errors.UserError` whose
sentence names the file and what to do.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from engine.errors import UserError

TEMP_SUFFIX = ".tmp"
_OPEN_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)
_OS_REASONS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission was denied",
    errno.EPERM: "the operation is not permitted",
}


def describe_os_error(error: OSError) -> str:
    """An OS error as a short clause: 'the disk is full', 'permission was denied', …"""
    return _OS_REASONS.get(error.errno or 0, (error.strerror or str(error)).lower())


def kind_of(mode: int) -> str | None:
    """What a file that is not a regular file is ('a FIFO (named pipe)', …); None for a regular file."""
    return next((kind for test, kind in _KINDS if test(mode)), None if stat.S_ISREG(mode) else "not a regular file")


def open_regular(path: Path, what: str, flags: int = os.O_RDONLY, mode: int = 0o644, follow_links: bool = False) -> int:
    """A file descriptor of ``path``, which must be a regular file and (unless ``follow_links``) not a symbolic link.

    ``what`` names the file in the refusal, e.g. "Run 'x' file 'metrics.jsonl'". Opening never
    blocks (a FIFO is refused, not waited on). :class:`FileNotFoundError` passes through.
    """
    flags |= _OPEN_FLAGS if not follow_links else _OPEN_FLAGS & ~os.O_NOFOLLOW
    try:
        descriptor = os.open(path, flags, mode)
    except FileNotFoundError:
        raise
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO):  # a link, a directory, a FIFO with no reader
            check_regular_or_absent(path, what)
        raise UserError(f"{what} cannot be opened ({describe_os_error(error)}): {str(path)!r}.") from None
    kind = kind_of(os.fstat(descriptor).st_mode)
    if kind is not None:
        os.close(descriptor)
        raise _not_regular(path, what, kind)
    os.set_blocking(descriptor, True)
    return descriptor


def check_regular_or_absent(path: Path, what: str) -> None:
    """Refuse, with the same sentences as :func:`open_regular`, anything but a regular file or nothing at ``path``."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISLNK(mode):
        raise UserError(
            f"{what} is a symbolic link ({str(path)!r}); lm-explorer follows no links in run folders — "
            "replace it with the file itself."
        )
    kind = kind_of(mode)
    if kind is not None:
        raise _not_regular(path, what, kind)


def _not_regular(path: Path, what: str, kind: str) -> UserError:
    return UserError(f"{what} is {kind} ({str(path)!r}), not a regular file; remove it or point lm-explorer at a regular file.")


def read_regular(path: Path, what: str, max_bytes: int) -> bytes:
    """The whole of a regular file of at most ``max_bytes`` bytes (checked before reading)."""
    descriptor = open_regular(path, what)
    with os.fdopen(descriptor, "rb") as file:
        size = os.fstat(descriptor).st_size
        if size > max_bytes:
            raise UserError(
                f"{what} is {size:,} bytes, more than the {max_bytes:,} it may hold ({str(path)!r}); "
                "it is not a file lm-explorer wrote — remove or restore it."
            )
        data = file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UserError(f"{what} grew past {max_bytes:,} bytes while being read ({str(path)!r}); remove or restore it.")
    return data


def read_lines(path: Path, what: str, max_line_bytes: int, follow_links: bool = False) -> Iterator[tuple[int, bytes]]:
    """(line number, line without its end) for each line of a regular file, streamed.

    A line longer than ``max_line_bytes`` is refused with a sentence naming its number, before it
    is held in memory whole.
    """
    descriptor = open_regular(path, what, follow_links=follow_links)
    with os.fdopen(descriptor, "rb") as file:
        for number, line in enumerate(iter(lambda: file.readline(max_line_bytes + 1), b""), start=1):
            if len(line) > max_line_bytes and not line.endswith(b"\n"):
                raise UserError(
                    f"{what} ({str(path)!r}): line {number} is longer than {max_line_bytes:,} bytes; split it into shorter lines."
                )
            yield number, line.rstrip(b"\r\n")


def append_text(path: Path, what: str, text: str) -> None:
    """Append ``text`` to a regular file (created if missing), never through a link."""
    descriptor = open_regular(path, what, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    with os.fdopen(descriptor, "ab") as file:
        file.write(text.encode("utf-8"))


def atomic_write(path: Path, data: bytes, durable: bool = True) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a part.

    The temporary file is created exclusively beside the target (``.<name>.<random>.tmp``) and
    renamed over it; a rename replaces a link in the target's place rather than following it.
    ``durable`` waits for the data to reach the disk first (not needed for a heartbeat).
    """
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        os.fchmod(handle, 0o644)
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            if durable:
                file.flush()
                os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def remove_orphan_temps(folder: Path, targets: tuple[str, ...]) -> list[str]:
    """Delete the temporary files that an interrupted :func:`atomic_write` of a file named ``targets*`` left in ``folder``.

    Only regular files named as :func:`atomic_write` names them are touched, and only for the
    given targets (name prefixes): call it as the one writer of those files, since a write in
    flight would lose its temporary file.
    """
    removed = []
    for entry in os.scandir(folder):
        if (
            entry.name.startswith(tuple(f".{target}" for target in targets))
            and entry.name.endswith(TEMP_SUFFIX)
            and entry.is_file(follow_symlinks=False)
        ):
            Path(entry.path).unlink(missing_ok=True)
            removed.append(entry.name)
    return removed


def is_plain_directory(path: Path) -> bool:
    """``path`` is a directory itself, not a link to one."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False
