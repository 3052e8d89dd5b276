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

A seed group among the listed runs (runs that differ only in their seed,
:func:`engine.runs.groups.seed_groups`) gets a group row, keyed by the group's identity: ``▸● n`` seeds (● all shown),
and each number column's mean ± sd over its members at the last epoch all of them finished. Enter on it expands it to its members' rows (listed under it) and
collapses it again; space shows or hides every member; ``i`` opens the members' details.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, ClassVar

from rich.text import Text
from textual import events, on
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable, Input

from engine.metric_table import Metric, collapsed, metrics, number
from engine.runs.groups import SeedGroup, seed_groups
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
GROUP_ROW = "group:"  # a group row's key: this and the group's key, its identity (no run name holds a colon)


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


def _best_by(run: RunState, epoch: int) -> list[float]:
    """The run's finite validation losses of the epochs up to ``epoch``."""
    values = (line.get("val_loss") for line in run.epoch_lines if line["epoch"] <= epoch)
    return [value for value in values if isinstance(value, (int, float)) and math.isfinite(value)]


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
        self.groups: dict[str, SeedGroup[RunState]] = {}  # group row key → its seed group (two runs or more)
        self.expanded: set[str] = set()  # the group rows whose members are listed
        self.group_names: dict[str, str] = {}  # a group row's name cell → its key (what sorting reads)
        self.filter_text = ""
        self.sort_column: str | None = None
        self.sort_reversed = False

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    @property
    def highlighted_key(self) -> str | None:
        """The key of the row under the cursor: a run's name, or a group row's key."""
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value

    @property
    def highlighted_run(self) -> str | None:
        """The name of the run under the cursor, if any (None on a group row)."""
        key = self.highlighted_key
        return None if key is None or key in self.groups else key

    @property
    def highlighted_group(self) -> SeedGroup[RunState] | None:
        """The seed group whose row is under the cursor, if any."""
        key = self.highlighted_key
        return self.groups.get(key) if key is not None else None

    @property
    def listed(self) -> list[str]:
        """The names of the listed runs, top to bottom."""
        return [name for row in self.ordered_rows if (name := row.key.value) is not None]

    def highlight(self, name: str) -> None:
        """Put the cursor on ``name``'s row, if the filter lists it."""
        if name in self.rows:
            self.move_cursor(row=self.get_row_index(name))

    def show_run(self, run: RunState) -> None:
        """Add the run's row or bring its cells up to date (a run the filter leaves out, or a collapsed group holds, gets no row)."""
        self.runs[run.name] = run
        self._regroup()
        self._put_row(run)
        self._sort()

    def _put_row(self, run: RunState) -> None:
        if not matches(run, self.filter_text) or self._collapsed(run.name):
            self.drop_row(run.name)
            return
        self._put(run.name, self._cells(run))

    def _put(self, key: str, row: list[Text | str]) -> None:
        cells = dict(zip((column for column, _ in COLUMNS), row, strict=True))
        if key not in self.rows:
            self.add_row(*cells.values(), key=key)
        else:
            for column, value in cells.items():
                self.update_cell(key, column, value, update_width=True)

    def _collapsed(self, name: str) -> bool:
        return any(name in group.names and key not in self.expanded for key, group in self.groups.items())

    def _regroup(self) -> None:
        """Group rows for the seed groups among the listed runs: added, updated, or dropped with their group."""
        listed = [run for run in self.runs.values() if matches(run, self.filter_text)]
        groups = {GROUP_ROW + group.key: group for group in seed_groups(listed) if group.n > 1}
        for key in set(self.groups) - set(groups):
            self.drop_row(key)
        self.groups = groups
        for key, group in groups.items():
            self._put(key, self._group_cells(group, key in self.expanded))
        for run in listed:
            if self._collapsed(run.name):
                self.drop_row(run.name)

    def toggle_group(self, key: str) -> None:
        """List a group's members under its row, or fold them into it again."""
        self.expanded ^= {key}
        self._regroup()
        for name in self.groups[key].names:
            self._put_row(self.runs[name])
        self._sort()
        if key in self.rows:
            self.move_cursor(row=self.get_row_index(key))

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a group row expands or collapses it."""
        key = event.row_key.value
        if key in self.groups:
            self.toggle_group(key)

    def drop_run(self, name: str) -> None:
        self.runs.pop(name, None)
        self.drop_row(name)
        self._regroup()

    def drop_row(self, name: str) -> None:
        if name in self.rows:
            self.remove_row(name)

    def set_filter(self, text: str) -> None:
        """List only the runs matching ``text``, keeping the highlighted one when it still matches."""
        self.filter_text = text
        highlighted = self.highlighted_run
        self.clear()
        self.groups = {}
        self._regroup()
        for run in self.runs.values():
            self._put_row(run)
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
        group = self.highlighted_group
        if group is not None:
            others = [run.name for run in self.runs.values() if run.shown and run.name not in group.names]
            self.post_message(self.DetailsRequested([*group.names, *others]))
            return
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
        """Sort by the chosen column, if any; a group's rows stay together, its row first, its members under it in list order."""
        if not self.row_count or (self.sort_column is None and not self.groups):
            return
        column = self.sort_column
        order = {name: index for index, name in enumerate(self.runs)}
        homes = {name: key for key, group in self.groups.items() for name in group.names}
        sign = -1 if self.sort_reversed else 1  # reversed, the groups' order flips but a group's row stays on top

        def position(cell: object) -> tuple[tuple[Any, str], int]:
            key = self.group_names.get(str(cell), str(cell))
            home = key if key in self.groups else homes.get(key)
            first = self.runs[self.groups[home].names[0]] if home is not None else self.runs[key]
            value = sort_value(first, column) if column is not None else order[first.name]
            member = 0 if key in self.groups or home is None else 1 + order[key]
            return (value, first.name), sign * member

        self.sort("name", key=position, reverse=self.sort_reversed)

    def _group_cells(self, group: SeedGroup[RunState], expanded: bool) -> list[Text | str]:
        """A group row: n seeds, the members' statuses, and each number column's mean ± sd over the members.

        The means compare like with like, as ``compare`` and the report do: every member at the last epoch all of
        them finished (:attr:`engine.runs.groups.GroupEpochs.common_epochs`, a diverged member's inf/NaN left out).
        The epoch column names that epoch, then, while the members stand at different points, their range
        (``2/3 · 2.40–3.00``: a member still training does not pull the means back to where it is).
        """
        from engine.formatting import objective_label
        from engine.metric_table import plus_minus
        from engine.runs.groups import GroupEpochs
        from engine.runs.welch import mean_sd

        runs = list(group.members)
        lead = runs[0]
        epochs = GroupEpochs(group.names, [run.epoch_lines for run in runs])
        common = epochs.common_epochs[-1] if epochs.common_epochs else None

        def spread(metric: str) -> str:
            values = epochs.at(metric, common) if common is not None else []
            return plus_minus(*mean_sd(values)) if values else "–"

        bests = [min(values) for run in runs if common is not None and (values := _best_by(run, common))]
        low, high = min(run.epoch for run in runs), max(run.epoch for run in runs)
        at = f"{common if common is not None else '–'}/{lead.config.train.epochs}"
        where = at if low == high == common else f"{at} · {low:.2f}" + (f"–{high:.2f}" if high > low else "")
        statuses = sorted({run.status for run in runs})
        name = f"{group.label} · {group.n} seeds"
        self.group_names[name] = GROUP_ROW + group.key
        cells: dict[str, Text | str] = {
            "mark": Text(
                f"{'▾' if expanded else '▸'}{'●' if all(run.shown for run in runs) else '○'} {group.n}",
                style=f"bold {lead.color}",
            ),
            "name": name,
            "objective": objective_label(lead.config.objective),
            "weight": f"{lead.config.objective.strength:g}",
            "status": Text(", ".join(f"{sum(run.status == status for run in runs)} {status}" for status in statuses)),
            "epoch": where,
            **{metric.key: spread(metric.key) for metric in LATEST_METRICS},
            "best_val_loss": plus_minus(*mean_sd(bests)) if bests else "–",
            "pairs_per_s": "–",
        }
        return [cells[key] for key, _ in COLUMNS]

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
