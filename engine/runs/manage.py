"""Deleting and renaming runs, for ``lm-explorer delete`` and ``rename`` (:mod:`engine.cli.manage`) and the app alike.

A run is a folder directly inside the checkpoints folder, and its folder's name is its identity
(:meth:`engine.runs.checkpoint.RunDirectory.read_record` takes the name from the folder, not from
``run.json``), so renaming a run is renaming its folder, and nothing inside it changes.

Both refuse a run that trains or waits to train (:data:`engine.runs.protocol.ALIVE`, as the folder says
to any reader), and take the run's writer lock (:class:`engine.runs.protocol.RunLock`) for the time they
work, so no trainer can start on the folder meanwhile. The folder is a trust boundary
(:mod:`engine.safe_io`): a run folder that is a symbolic link is refused, nothing inside one is
followed, and deleting removes only the files lm-explorer writes there (:func:`run_files`):
anything else in the folder (a subfolder, a file of the user's) makes it refuse before it
removes anything. Renaming first creates the new, empty folder (``mkdir`` is atomic, so no other
process can take the name meanwhile), then renames the run's folder over it (``os.rename``: the
run has one name or the other, never both or neither).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from engine.errors import UserError
from engine.runs import protocol
from engine.runs.names import check_name
from engine.safe_io import TEMP_SUFFIX, describe_os_error

_WRITTEN = (protocol.RECORD_FILE, protocol.METRICS_FILE, *protocol.PROTOCOL_FILES)
RUN_FILE_PATTERN = re.compile(
    r"^(?:" + "|".join(map(re.escape, _WRITTEN)) + r"|(?:model|optimizer)-e[0-9]{1,9}-s[0-9]{1,12}\.safetensors"
    r"|\.(?:" + "|".join(map(re.escape, _WRITTEN)) + r"|model-|optimizer-)[^/]*" + re.escape(TEMP_SUFFIX) + r")$"
)
"""The names of the files lm-explorer writes in a run folder: the record, metrics, tensors, protocol files and their temporary files."""


def run_folder(checkpoints: Path, name: str, leftover: bool = False) -> Path:
    """The folder of the run ``name``: a real folder (not a link) directly inside ``checkpoints``, holding a run.

    With ``leftover``, also a folder holding only files lm-explorer writes but no record: what a
    trainer killed before its first save completed leaves (``runs`` does not list it).
    """
    from engine.runs.view import RunReader

    check_name(name)
    folder = Path(checkpoints) / name
    try:
        mode = os.lstat(folder).st_mode
    except FileNotFoundError:
        raise UserError(f"No run named {name!r} in {str(checkpoints)!r}; 'lm-explorer runs' lists them.") from None
    if stat.S_ISLNK(mode):
        raise UserError(
            f"Run {name!r} is a symbolic link ({str(folder)!r}), not a run folder; lm-explorer follows no links "
            "in the checkpoints folder — remove the link yourself if you mean to."
        )
    if not stat.S_ISDIR(mode):
        raise UserError(f"{str(folder)!r} is not a folder, so it is not a run; 'lm-explorer runs' lists them.")
    view = RunReader(checkpoints).view(name)
    if view.status is None and view.problem is None and not (leftover and _only_run_files(folder)):
        raise UserError(f"{str(folder)!r} holds no run; 'lm-explorer runs' lists them.")
    if view.status in protocol.ALIVE:
        how = f"stop it first ('lm-explorer stop {name}', or x in the app)"
        raise UserError(f"Run {name!r} is {view.status}" + (f" ({view.trainer})" if view.alive else "") + f"; {how}.")
    return folder


def _only_run_files(folder: Path) -> bool:
    try:
        with _opened(folder) as fd:
            return bool(run_files(fd, folder.name))
    except UserError:
        return False


@contextmanager
def _opened(folder: Path) -> Iterator[int]:
    """The run folder opened without following a link: every later step works through this descriptor, so a
    folder swapped for a link after the checks cannot lead outside it."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as error:
        raise UserError(
            f"Run folder {str(folder)!r} cannot be opened ({describe_os_error(error)}); nothing was changed."
        ) from None
    try:
        yield fd
    finally:
        os.close(fd)


def _check_unmoved(fd: int, folder: Path, lock: protocol.RunLock) -> None:
    """The path still names the folder opened as ``fd``, and the lock taken is the file inside it."""
    opened = os.fstat(fd)
    try:
        named = os.lstat(folder)
        lock_file = os.stat(protocol.LOCK_FILE, dir_fd=fd, follow_symlinks=False)
        unmoved = (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino) and (
            lock_file.st_dev,
            lock_file.st_ino,
        ) == lock.identity()
    except FileNotFoundError:
        unmoved = False
    if not unmoved:
        raise UserError(f"Run folder {str(folder)!r} was replaced while it was being changed; nothing was removed or renamed.")


@contextmanager
def _held(folder: Path, name: str) -> Iterator[protocol.RunLock]:
    """The run's writer lock for the time of the block (a trainer starting meanwhile is refused with a sentence)."""
    lock = protocol.RunLock(folder, name, protocol.MAINTENANCE)
    lock.acquire()
    try:
        yield lock
    finally:
        lock.release()


def run_files(fd: int, name: str) -> list[os.DirEntry[str]]:
    """The entries of the run folder open as ``fd``, all of them files lm-explorer writes (links among them are links,
    never followed). Anything else (a folder, a file by another name) is refused with a sentence naming it.
    """
    entries = list(os.scandir(fd))
    for entry in entries:
        if entry.is_dir(follow_symlinks=False) or not RUN_FILE_PATTERN.fullmatch(entry.name):
            kind = "a folder" if entry.is_dir(follow_symlinks=False) else "a file"
            raise UserError(
                f"Run {name!r} holds {kind} lm-explorer did not write ({entry.name!r}); move it out of its folder, then delete the run."
            )
    return entries


def size_label(size: int) -> str:
    """Bytes as ``512 B``, ``12.3 kB``, ``4.1 MB`` or ``1.2 GB``."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def describe(folder: Path) -> str:
    """What deleting the run would remove: ``4 files, 1.2 MB``."""
    with _opened(folder) as fd:
        entries = run_files(fd, folder.name)
        size = sum(entry.stat(follow_symlinks=False).st_size for entry in entries)
    return f"{len(entries)} file{'s' * (len(entries) != 1)}, {size_label(size)}"


def delete_run(checkpoints: Path, name: str) -> str:
    """Remove the run ``name`` (or a leftover folder, :func:`run_folder`) and its folder; the sentence saying what was deleted."""
    folder = run_folder(checkpoints, name, leftover=True)
    with _opened(folder) as fd, _held(folder, name) as lock:
        _check_unmoved(fd, folder, lock)
        entries = [entry for entry in run_files(fd, name) if entry.name != protocol.LOCK_FILE]
        size = sum(entry.stat(follow_symlinks=False).st_size for entry in entries)
        try:
            for entry in entries:
                os.unlink(entry.name, dir_fd=fd)  # a link is removed, its target left alone
        except OSError as error:
            raise UserError(
                f"Run {name!r} could not be deleted whole ({describe_os_error(error)} for {entry.name!r}); "
                f"what is left is in {str(folder)!r}."
            ) from None
    try:
        folder.rmdir()  # the lock file went with the lock
    except OSError as error:
        raise UserError(
            f"Run {name!r}'s files were deleted but its folder {str(folder)!r} was not ({describe_os_error(error)}); "
            "something was written into it meanwhile."
        ) from None
    return f"Deleted run {name!r}: {len(entries)} file{'s' * (len(entries) != 1)} ({size_label(size)}) and its folder {str(folder)!r}."


def rename_run(checkpoints: Path, name: str, new: str) -> str:
    """Rename the run ``name`` to ``new`` (its folder, atomically); the sentence saying so."""
    check_name(new, "New run name")
    if new == name:
        raise UserError(f"Run {name!r} already has that name; give another one.")
    folder = run_folder(checkpoints, name)
    target = folder.parent / new
    try:
        target.mkdir()  # claims the name: no other process can take it from here on
    except FileExistsError:
        raise UserError(f"A run (or file) named {new!r} already exists in {str(checkpoints)!r}; choose another name.") from None
    except OSError as error:
        raise UserError(f"Cannot rename runs in {str(checkpoints)!r} ({describe_os_error(error)}).") from None
    try:
        with _opened(folder) as fd, _held(folder, name) as lock:
            _check_unmoved(fd, folder, lock)
            os.rename(folder, target)  # over the empty folder just made: one atomic step
            lock.folder = target  # the lock's file moved with the folder: let it go there
    except (OSError, UserError) as error:
        with suppress(OSError):
            target.rmdir()
        if isinstance(error, UserError):
            raise
        raise UserError(f"Run {name!r} could not be renamed ({describe_os_error(error)}); it keeps its name.") from None
    return f"Renamed run {name!r} to {new!r}."
