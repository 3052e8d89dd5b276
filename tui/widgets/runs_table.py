"""The runs list: every run of this session and every saved one, one row each.

Columns: the run's number in its plot color (● shown in plots and generation, ○ hidden), name,
objective and weight (what tells runs apart, first: 120 columns show them), status (with progress
while training), epoch, the latest validation loss, distinct predictions (collapsed runs marked) and
accuracy, the best validation loss so far (hidden runs' too), the latest training loss, entropy and
KL, throughput (training pairs per second on the run's latest metrics line: a training window's
while it trains, the last epoch's, validation and checkpoint included, once it ends). Names sort
as read (``-2`` before ``-10``).

``i`` opens the highlighted run's settings, beside those of the other shown runs with their
differences marked (:mod:`tui.screens.run_detail`). ``/`` opens the filter line: only runs whose name, objective or status contain every word typed
are listed. ``o`` sorts by the next column (``O`` reverses), as does a click on a column's header
(a second click reverses). A click on a run's ●/○ shows or hides it. Space, ``s`` (show only this run),
``h`` (hide all), ``x``, ``r``, ``e`` (more epochs), ``n`` (rename) and ``d`` (delete) act through the app's actions.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, ClassVar

from rich.text import Text
from textual import events, on
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable, Input

from engine.metric_table import Metric, collapsed, metrics, number
from tui.session import RunState
from tui.widgets.ordered_input import OrderedInput

LATEST_METRICS = metrics("val_loss", "distinct_predictions", "accuracy", "train_loss", "entropy", "kl")
"""The metrics a row shows at their latest values; the best validation loss sits after the first three."""
COLUMNS = (  # what tells runs apart first, so that 120 columns show it and `o` reaches it in a few presses
    ("mark", "#"),
    ("name", "run"),
    ("objective", "objective"),
    ("weight", "weight"),
    ("status", "status"),
    ("epoch", "epoch"),
    *((metric.key, metric.label) for metric in LATEST_METRICS[:3]),
    ("best_val_loss", "best val"),
    *((metric.key, metric.label) for metric in LATEST_METRICS[3:]),
    ("pairs_per_s", "pairs/s"),
)
STATUS_STYLES = {
    "training": "bold",
    "finished": "green",
    "stopped": "yellow",
    "diverged": "red",
    "failed": "bold red",
    "queued": "dim",
}
MISSING = float("inf")


def rate_label(pairs_per_s: float | None) -> str:
    """A throughput in three significant digits: ``850/s``, ``12.3k/s``, ``1.25M/s``; ``–`` when unknown."""
    if pairs_per_s is None:
        return "–"
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if pairs_per_s >= scale * 0.9995:
            return f"{pairs_per_s / scale:.3g}{prefix}/s"
    return f"{pairs_per_s:.3g}/s"


def _latest(key: str) -> Callable[[RunState], float | None]:
    """The run's latest value of the metric ``key``, or None before it has one."""
    return lambda run: run.metrics.get(key)


def _metric_cell(metric: Metric, run: RunState) -> Text | str:
    """The run's latest value of ``metric``; a collapse in bold red."""
    text = metric.render(run.metrics.get(metric.key))
    return Text(text, style="bold red" if collapsed(run.metrics) else "") if metric.collapse else text


def sort_value(run: RunState, column: str) -> Any:
    """What a column sorts by: numbers as numbers (missing last), the rest as text."""
    numbers: dict[str, Callable[[RunState], float | None]] = {
        "mark": lambda r: r.number,
        "epoch": lambda r: r.epoch,
        "weight": lambda r: r.config.objective.strength,
        "best_val_loss": lambda r: r.best_val_loss,
        "pairs_per_s": lambda r: r.pairs_per_s,
        **{metric.key: _latest(metric.key) for metric in LATEST_METRICS},
    }
    if column in numbers:
        value = numbers[column](run)
        return MISSING if value is None else value
    if column == "objective":
        from engine.formatting import objective_label

        return natural_key(objective_label(run.config.objective))
    return natural_key(str(getattr(run, column, run.name)))


def natural_key(text: str) -> tuple[tuple[int, int, str], ...]:
    """Text sorted as people read it: runs of digits by their value, so ``kl-2`` comes before ``kl-10``."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part.casefold()) for part in re.split(r"(\d+)", text) if part)


def matches(run: RunState, text: str) -> bool:
    """Whether every word of ``text`` is in the run's name, objective or status (case-insensitive)."""
    from engine.formatting import objective_label

    haystack = f"{run.name} {objective_label(run.config.objective)} {run.config.objective.regularizer} {run.status}".lower()
    return all(word in haystack for word in text.lower().split())


class RunsFilter(OrderedInput):
    """The filter line over the runs list; hidden until ``/``, escape clears and hides it."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Clear filter", show=False)]

    DEFAULT_CSS = """
    RunsFilter { display: none; }
    RunsFilter.-open { display: block; }
    """

    def action_close(self) -> None:
        self.value = ""
        self.remove_class("-open")
        self.screen.set_focus(self.screen.query_one(RunsTable))

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        self.screen.query_one(RunsTable).set_filter(event.value)

    @on(Input.Submitted)
    def _submitted(self) -> None:
        """Enter keeps the filter and goes back to the list."""
        self.screen.set_focus(self.screen.query_one(RunsTable))


class RunsTable(DataTable[Text | str]):
    """A row per run; space shows or hides the highlighted run, x stops it, r resumes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "app.toggle_run", "Show", key_display="␣"),
        Binding("s", "app.show_only", "Show only", show=False),
        Binding("h", "app.hide_all", "Hide all", show=False),
        Binding("x", "app.stop_run", "Stop"),
        Binding("r", "app.resume_run", "Resume"),
        Binding("e", "app.continue_run", "More epochs", show=False),
        Binding("n", "app.rename_run", "Rename", show=False),
        Binding("d,delete", "app.delete_run", "Delete", key_display="d / delete", show=False),
        Binding("i", "details", "Details"),
        Binding("slash", "open_filter", "Filter"),
        Binding("o", "sort_next", "Sort", show=False),
        Binding("O", "sort_reverse", "Reverse sort", show=False),
    ]

    DEFAULT_CSS = """
    RunsTable { height: auto; max-height: 100%; }
    """

    class DetailsRequested(Message):
        """Show these runs' settings (the highlighted run first, then the other shown runs, to compare)."""

        def __init__(self, names: list[str]) -> None:
            super().__init__()
            self.names = names

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.runs: dict[str, RunState] = {}  # every run handed to show_run, listed or filtered out
        self.filter_text = ""
        self.sort_column: str | None = None
        self.sort_reversed = False

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    @property
    def highlighted_run(self) -> str | None:
        """The name of the run under the cursor, if any."""
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value

    @property
    def listed(self) -> list[str]:
        """The names of the listed runs, top to bottom."""
        return [name for row in self.ordered_rows if (name := row.key.value) is not None]

    def highlight(self, name: str) -> None:
        """Put the cursor on ``name``'s row, if the filter lists it."""
        if name in self.rows:
            self.move_cursor(row=self.get_row_index(name))

    def show_run(self, run: RunState) -> None:
        """Add the run's row or bring its cells up to date (a run the filter leaves out gets no row)."""
        self.runs[run.name] = run
        if not matches(run, self.filter_text):
            self.drop_row(run.name)
            return
        cells = dict(zip((key for key, _ in COLUMNS), self._cells(run), strict=True))
        if run.name not in self.rows:
            self.add_row(*cells.values(), key=run.name)
        else:
            for key, value in cells.items():
                self.update_cell(run.name, key, value, update_width=True)
        self._sort()

    def drop_run(self, name: str) -> None:
        self.runs.pop(name, None)
        self.drop_row(name)

    def drop_row(self, name: str) -> None:
        if name in self.rows:
            self.remove_row(name)

    def set_filter(self, text: str) -> None:
        """List only the runs matching ``text``, keeping the highlighted one when it still matches."""
        self.filter_text = text
        highlighted = self.highlighted_run
        self.clear()
        for run in self.runs.values():
            if matches(run, text):
                self.add_row(*self._cells(run), key=run.name)
        self._sort()
        if highlighted is not None:
            self.highlight(highlighted)

    async def _on_click(self, event: events.Click) -> None:
        """A click on a run's ● / ○ shows or hides it; elsewhere DataTable's own click handling goes on."""
        meta = event.style.meta
        if meta.get("column") == 0 and meta.get("row", -1) >= 0:
            event.prevent_default()
            self.move_cursor(row=meta["row"])
            await self.run_action("app.toggle_run")

    @on(DataTable.HeaderSelected)
    def _header_selected(self, event: DataTable.HeaderSelected) -> None:
        """A click on a column's header sorts by it; a second click reverses."""
        column = str(event.column_key.value)
        self.sort_reversed = not self.sort_reversed if column == self.sort_column else False
        self.sort_column = column
        self._sort()

    def action_details(self) -> None:
        name = self.highlighted_run
        if name is None:
            self.notify("No run is listed yet.", severity="warning")
            return
        others = [run.name for run in self.runs.values() if run.shown and run.name != name]
        self.post_message(self.DetailsRequested([name, *others]))

    def action_open_filter(self) -> None:
        field = self.screen.query_one(RunsFilter)
        field.add_class("-open")
        self.screen.set_focus(field)

    def action_sort_next(self) -> None:
        keys = [key for key, _ in COLUMNS]
        self.sort_column = keys[(keys.index(self.sort_column) + 1) % len(keys)] if self.sort_column else "name"
        self.sort_reversed = False
        self._sort()
        self.notify(f"Runs sorted by {dict(COLUMNS)[self.sort_column]}.")

    def action_sort_reverse(self) -> None:
        self.sort_reversed = not self.sort_reversed
        self._sort()

    def _sort(self) -> None:
        if self.sort_column is not None and self.row_count:
            column = self.sort_column
            self.sort("name", key=lambda name: sort_value(self.runs[str(name)], column), reverse=self.sort_reversed)

    @staticmethod
    def _cells(run: RunState) -> list[Text | str]:
        from engine.formatting import objective_label

        cells: dict[str, Text | str] = {
            "mark": Text(f"{'●' if run.shown else '○'} {run.number}", style=run.color),
            "name": run.name,
            "objective": objective_label(run.config.objective),
            "weight": f"{run.config.objective.strength:g}",
            "status": Text(run.status_text, style=STATUS_STYLES.get(run.status, "")),
            "epoch": f"{run.epoch:.2f}/{run.config.train.epochs}",
            **{metric.key: _metric_cell(metric, run) for metric in LATEST_METRICS},
            "best_val_loss": number(run.best_val_loss),
            "pairs_per_s": rate_label(run.pairs_per_s),
        }
        return [cells[key] for key, _ in COLUMNS]
