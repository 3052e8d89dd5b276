"""What the app remembers per checkpoints folder: the form, pinned seeds, shown runs, run numbers, the view's toggles and zooms.

Kept in ``<checkpoints>/.lm-explorer-app.json`` (a dot file: run listings skip it), written
atomically, off the UI thread, within :data:`SAVE_EVERY_S` of each change (so a crash or a SIGKILL loses at most
that and the write under way) and when the app closes, and read when it opens. The file lives in a folder that is a trust
boundary, so it is validated (plain types, bounded sizes); a file that does not validate is
ignored, and the app opens as if it were new.
"""

from __future__ import annotations

import contextlib
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from engine.errors import UserError
from engine.safe_io import read_regular
from tui.plotting import MIN_Y_ZOOM
from tui.session import XAxis

MEMORY_FILE = ".lm-explorer-app.json"
MAX_BYTES = 1_000_000
MAX_TEXT = 4_000
SAVE_EVERY_S = 1.0


class Memory(BaseModel):
    """The remembered state; every field has the value a fresh app starts with."""

    model_config = ConfigDict(extra="ignore")

    form: dict[str, str] = Field(default_factory=dict, max_length=32)  # field id → its text or choice
    extra: dict[str, Any] = Field(default_factory=dict, max_length=64)  # settings a cloned run brought, dotted keys
    seeds: list[str] = Field(default_factory=list, max_length=200)
    shown: list[str] = Field(default_factory=list, max_length=1000)
    log_scale: bool = False
    validation: bool = False
    smoothing: float = Field(default=0.0, ge=0.0, lt=1.0)
    x_axis: XAxis = "epoch"
    y_zoom: dict[Annotated[str, Field(max_length=32)], Annotated[float, Field(ge=MIN_Y_ZOOM, lt=1.0)]] = Field(
        default_factory=dict, max_length=16
    )  # pane id → share of its fitted y range shown
    words: str = Field(default="10", max_length=8)
    sampling: bool = False
    numbers: dict[str, int] = Field(default_factory=dict, max_length=20_000)  # run name → its number in the runs list
    next_number: int = Field(default=1, ge=1, le=10**9)

    def bounded(self) -> Memory:
        """The same memory with over-long texts dropped."""
        return self.model_copy(
            update={
                "form": {key: value for key, value in self.form.items() if len(key) < 64 and len(value) <= MAX_TEXT},
                "seeds": [seed for seed in self.seeds if len(seed) <= MAX_TEXT],
                "numbers": {name: number for name, number in self.numbers.items() if len(name) <= 80 and 1 <= number <= 10**9},
            }
        )


def memory_path(checkpoints: Path) -> Path:
    return Path(checkpoints) / MEMORY_FILE


def load_memory(checkpoints: Path) -> Memory:
    """The folder's memory, or a fresh one when there is none or it is not a plain, valid file."""
    path = memory_path(checkpoints)
    try:
        return Memory.model_validate(json.loads(read_regular(path, "The app's memory file", MAX_BYTES))).bounded()
    except (OSError, UserError, ValueError, RecursionError):  # ValueError: bad JSON or UTF-8, a 4300+ digit number, invalid
        return Memory()


def save_memory(checkpoints: Path, memory: Memory) -> None:
    """Write the memory if the checkpoints folder exists (the app never creates it just for this)."""
    from engine.safe_io import atomic_write

    folder = Path(checkpoints)
    if folder.is_dir():
        atomic_write(memory_path(folder), memory.model_dump_json(indent=2).encode("utf-8"))


class MemoryKeeper:
    """Saves the app's memory when it differs from what was saved last: looked at every :data:`SAVE_EVERY_S` and at exit.

    The UI thread only compares; the write, which waits for the disk (:func:`engine.safe_io.atomic_write`
    syncs it, so that a crash keeps the file whole), happens in a thread of its own. A change made while
    a write is under way is written after it, and only the latest one: the file is at most one look and
    one write behind. :meth:`close` writes what is left and waits for it.
    """

    def __init__(self, checkpoints: Path, loaded: Memory) -> None:
        self.checkpoints = checkpoints
        self.saved = loaded  # the latest memory handed to the writer
        self._pending: Memory | None = None
        self._lock = threading.Lock()
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="memory")
        self._closed = False

    def keep(self, memory: Memory) -> None:
        """Have ``memory`` written unless it is what the file holds already (a read-only folder keeps the old one)."""
        if memory == self.saved or self._closed:
            return
        self.saved = memory
        with self._lock:
            queued, self._pending = self._pending is not None, memory
        if not queued:
            self._writer.submit(self._write)

    def close(self) -> None:
        """Wait for the writes handed over so far; none is taken after this."""
        self._closed = True
        self._writer.shutdown(wait=True)

    def _write(self) -> None:
        with self._lock:
            memory, self._pending = self._pending, None
        if memory is None:
            return
        numbers = {name: number for name, number in memory.numbers.items() if (Path(self.checkpoints) / name).is_dir()}
        with contextlib.suppress(OSError):  # a folder made read-only, or removed, since the app opened
            save_memory(self.checkpoints, memory.model_copy(update={"numbers": numbers}))


def remember(app: Any) -> Memory:
    """The app's state worth keeping (``app`` is the ExplorerApp)."""
    form, plots, generation = app.form, app.plots, app.generation
    return Memory(
        form=form.values(),
        extra=form.extra,
        seeds=list(generation.seeds),
        shown=[run.name for run in app.session.shown],
        log_scale=plots.log_scale,
        validation=plots.validation,
        smoothing=plots.smoothing,
        x_axis=plots.x_axis,
        y_zoom=dict(plots.y_zoom),
        words=generation.query_one("#words").value,
        sampling=generation.query_one("#sampling").value,
        numbers=dict(app.session.numbers),  # those of runs whose folders are gone are dropped as it is written
        next_number=app.session.next_number,
    )


def recall_view(app: Any, memory: Memory) -> None:
    """Put back the form, the seeds, the toggles and the run numbers (shown runs come back once the saved runs are listed).

    A corpus given on the command line wins over the remembered one.
    """
    app.session.recall_numbers(memory.numbers, memory.next_number)
    app.form.restore(
        {key: value for key, value in memory.form.items() if not (key == "corpus" and app.corpus_paths)}, memory.extra
    )
    plots = app.plots
    plots.log_scale, plots.validation, plots.smoothing = memory.log_scale, memory.validation, memory.smoothing
    plots.x_axis, plots.y_zoom = memory.x_axis, dict(memory.y_zoom)
    generation = app.generation
    generation.query_one("#words").value = memory.words
    generation.query_one("#sampling").value = memory.sampling
    for seed in memory.seeds:
        generation.add_seed(seed)
