"""The runs list: every run of this session and every saved one, one row each.

Columns: the run's number in its plot color (● shown in plots and generation, ○ hidden), name,
status (with progress while training), epoch, latest validation loss, accuracy, distinct
predictions (collapsed runs marked), objective and weight. Its keys act on the highlighted run
through the app's actions.
"""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from tui.session import RunState

COLUMNS = (("mark", "#"), ("name", "run"), ("status", "status"), ("epoch", "epoch"), ("val_loss", "val loss"),
           ("accuracy", "accuracy"), ("distinct", "distinct"), ("objective", "objective"), ("weight", "weight"))
STATUS_STYLES = {"training": "bold", "finished": "green", "stopped": "yellow", "diverged": "red", "failed": "bold red", "queued": "dim"}


class RunsTable(DataTable):
    """A row per run; space shows or hides the highlighted run, x stops it, r resumes it."""

    BINDINGS = [
        Binding("space", "app.toggle_run", "Show/hide"),
        Binding("x", "app.stop_run", "Stop"),
        Binding("r", "app.resume_run", "Resume"),
    ]

    DEFAULT_CSS = """
    RunsTable { height: auto; max-height: 100%; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    @property
    def highlighted_run(self) -> str | None:
        """The name of the run under the cursor, if any."""
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value

    def show_run(self, run: RunState) -> None:
        """Add the run's row or bring its cells up to date."""
        cells = dict(zip((key for key, _ in COLUMNS), self._cells(run), strict=True))
        if run.name not in self.rows:
            self.add_row(*cells.values(), key=run.name)
            return
        for key, value in cells.items():
            self.update_cell(run.name, key, value, update_width=True)

    def drop_run(self, name: str) -> None:
        if name in self.rows:
            self.remove_row(name)

    @staticmethod
    def _cells(run: RunState) -> list[Text | str]:
        from engine.report import distinct_label, is_collapsed, number, objective_label

        metrics = run.metrics
        distinct = metrics.get("distinct_predictions")
        collapsed = distinct is not None and is_collapsed(int(distinct))
        distinct_cell = Text(distinct_label(distinct), style="bold red" if collapsed else "")
        return [
            Text(f"{'●' if run.shown else '○'} {run.number}", style=run.color),
            run.name,
            Text(run.status_text, style=STATUS_STYLES.get(run.status, "")),
            f"{run.epoch:.2f}/{run.config.train.epochs}",
            number(metrics.get("val_loss")),
            number(metrics.get("accuracy")),
            distinct_cell,
            objective_label(run.config.objective),
            f"{run.config.objective.weight:g}",
        ]
