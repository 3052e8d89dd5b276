"""A run's whole configuration and record, or several runs' side by side with their differences marked.

Rows are every setting (``objective.weight``, ``model.hidden_size``…) and what the run's
``run.json`` records besides: corpus fingerprint and sources, vocabulary and pair counts, status,
epochs and steps trained, library versions, times. With two or more runs, a row whose values
differ is marked ``≠`` and drawn bold; ``d`` shows only those rows. ``c`` closes the view and
puts the first run's settings into the Setup form (its clone), escape just closes it.

When the runs are two seed groups (:func:`engine.runs.groups.seed_groups`), one of them of several seeds, a comparison stands
above the settings: per validation metric at the groups' last common epoch, the means ± sd, the
difference, its 95 % Welch interval with its df, n per side and the plain sentence
(:func:`engine.runs.compare.compare_seed_groups`, as ``lm-explorer compare`` prints it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static
from textual.worker import Worker, WorkerState

from engine.config.models import RunConfig
from engine.runs.compare import TABLE_HEADERS, GroupComparison, compare_seed_groups
from engine.runs.groups import SeedGroup, seed_groups
from tui.session import RunState
from tui.widgets.setup_form import flat_settings

DIFFERENT = "≠ "
SAME = "  "


def config_rows(config: RunConfig) -> dict[str, str]:
    """Every setting as text, keyed by its dotted name, the preset first."""
    rows = {"preset": config.preset or "none"}
    for key, value in flat_settings(config).items():
        rows[key] = (
            ", ".join(map(str, value)) if isinstance(value, list) else f"{value:g}" if isinstance(value, float) else str(value)
        )
    return rows


def record_rows(record: Any) -> dict[str, str]:
    """What ``run.json`` records besides the settings."""
    rows = {
        "corpus fingerprint": record.corpus_fingerprint,
        "corpus sources": "; ".join(record.corpus_sources),
        "vocabulary": f"{len(record.vocab):,}",
        "pairs (train / val)": f"{record.train_pairs:,} / {record.val_pairs:,}",
        "status": record.status,
        "epochs trained": f"{record.epoch_progress:.2f}",
        "steps": f"{record.step:,}",
    }
    rows.update({f"version {name}": version for name, version in record.versions.items()})
    rows.update({"created": record.created, "updated": record.updated})
    return rows


class RunDetail(ModalScreen[RunConfig | None]):
    """Settings × runs; dismissed with the first run's config when ``c`` clones it into the form."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "dismiss(None)", "Close"),
        Binding("d", "toggle_differences", "Only differences"),
        Binding("c", "clone", "Clone into the form"),
    ]

    DEFAULT_CSS = """
    RunDetail { align: center middle; }
    RunDetail > Vertical { width: 95%; height: 90%; border: round $primary; background: $surface; padding: 0 1; }
    RunDetail #detail-table { height: 1fr; }
    RunDetail #detail-hint { color: $text-muted; height: auto; }
    RunDetail #detail-comparison { height: auto; max-height: 50%; display: none; }
    RunDetail #detail-comparison.-shown { display: block; }
    """

    def __init__(self, runs: list[RunState], checkpoints: Path) -> None:
        super().__init__()
        self.runs = runs
        self.checkpoints = Path(checkpoints)
        self.records: dict[str, dict[str, str]] = {}  # run name → its record's rows, once read
        self.comparison: GroupComparison | None = None  # two seed groups' comparison, once read
        self.only_differences = False

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            names = " vs ".join(f"#{run.number} {run.name}" for run in self.runs)
            box.border_title = f"{'Run' if len(self.runs) == 1 else 'Runs compared'}: {names} · escape closes"
            yield Static("", id="detail-comparison")
            yield DataTable(id="detail-table", cursor_type="row", zebra_stripes=True)
            hint = (
                "d: only the differences · c: clone the first run into the Setup form"
                if len(self.runs) > 1
                else "c: clone this run into the Setup form · show other runs (space in the runs list) to compare them"
            )
            yield Static(hint, id="detail-hint")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column("setting", key="setting")
        for run in self.runs:
            table.add_column(Text(f"#{run.number} {run.name}", style=f"bold {run.color}"), key=run.name)
        self._fill()
        self._read_records()
        groups = seed_groups(self.runs)
        if len(groups) == 2 and max(group.n for group in groups) > 1:  # two single runs: the settings say it all
            self._compare(groups[0], groups[1])

    def rows(self) -> dict[str, list[str]]:
        """Setting → one value per run (``–`` where a run has none), in order."""
        per_run = [{**config_rows(run.config), **self.records.get(run.name, {})} for run in self.runs]
        keys = list(dict.fromkeys(key for rows in per_run for key in rows))
        return {key: [rows.get(key, "–") for rows in per_run] for key in keys}

    def differences(self) -> list[str]:
        """The settings whose values are not the same for every run."""
        return [key for key, values in self.rows().items() if len(set(values)) > 1]

    def _fill(self) -> None:
        table = self.query_one(DataTable)
        table.clear()
        compare = len(self.runs) > 1
        for key, values in self.rows().items():
            differs = compare and len(set(values)) > 1
            if self.only_differences and not differs:
                continue
            style = "bold yellow" if differs else ""
            table.add_row(
                Text((DIFFERENT if differs else SAME) + key, style=style), *(Text(v, style=style) for v in values), key=key
            )

    @work(thread=True, exit_on_error=False)
    def _read_records(self) -> dict[str, dict[str, str]]:
        """Read each run's ``run.json`` (a queued run has none yet)."""
        from engine.errors import UserError
        from engine.runs.checkpoint import RunDirectory

        records = {}
        for run in self.runs:
            directory = RunDirectory(self.checkpoints, run.name)
            if not directory.exists():
                continue
            try:
                records[run.name] = record_rows(directory.read_record())
            except UserError as error:
                records[run.name] = {"status": f"unreadable: {error}"}
        return records

    @work(thread=True, exit_on_error=False)
    def _compare(self, a: SeedGroup[RunState], b: SeedGroup[RunState]) -> GroupComparison:
        """The two groups' comparison, read from their metrics files."""
        return compare_seed_groups(self.checkpoints, a, b)

    @on(Worker.StateChanged)
    def _records_read(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:  # a metrics file refused (a link, a FIFO): say so rather than show nothing
            self.notify(str(event.worker.error), title="Run details", severity="error")
            return
        if event.state != WorkerState.SUCCESS:
            return
        if isinstance(event.worker.result, dict):
            self.records = event.worker.result
            self._fill()
        elif isinstance(event.worker.result, GroupComparison):
            self.comparison = event.worker.result
            self._show_comparison(self.comparison)

    def _show_comparison(self, comparison: GroupComparison) -> None:
        from engine.formatting import text_table

        text = Text(f"A: {comparison.label_a}   B: {comparison.label_b}\n", style="bold")
        if comparison.rows:
            text.append(text_table(TABLE_HEADERS, [row.cells() for row in comparison.rows]) + "\n")
        text.append("\n".join(comparison.sentences()))
        panel = self.query_one("#detail-comparison", Static)
        panel.update(text)
        panel.add_class("-shown")

    def action_toggle_differences(self) -> None:
        self.only_differences = not self.only_differences
        self._fill()

    def action_clone(self) -> None:
        self.dismiss(self.runs[0].config)
