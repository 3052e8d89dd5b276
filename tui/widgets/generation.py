"""The Generate panel: pinned seed texts × shown runs, each cell a run's continuation of a seed.

Enter in the seed field pins a seed. Each run's column is (re)generated in a worker thread from
its latest checkpoint whenever a newer one lands, so continuations change while a model learns.
Highlighting a cell shows that continuation step by step: each word, its probability, the
entropy of the distribution it came from and the top-3 alternatives. Seed words the run does not
know are flagged in the cell, and each cell names the epoch of the weights that wrote it. Long
seeds are cut with an ellipsis in the table; the step-by-step view gives them whole. Greedy
decoding by default; the switch samples among the top 5 (the study's own generator). A character
typed in the table that is none of its keys (``d``, ``s``, ``y``, ``m``) goes on in the seed field,
so a seed typed while the table has focus is not lost to the table.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, NamedTuple, TypeAlias, TypeVar

from rich.table import Table
from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, Input, Label, Static, Switch
from textual.worker import Worker, get_current_worker

from engine.errors import UserError
from engine.runs.groups import seed_groups
from tui.session import RunState
from tui.widgets.ordered_input import OrderedInput

if TYPE_CHECKING:
    from engine.generate import Continuation
    from engine.runs.checkpoint import LoadedRun

Result: TypeAlias = "Continuation | str"
"""A cell's result: the continuation, or the sentence saying why there is none."""
Stored = TypeVar("Stored")

DEFAULT_WORDS = 10
MAX_WORDS = 100
SAMPLING_TOP_K = 5
LOAD_ATTEMPTS = 3
LOAD_RETRY_S = 0.2
PENDING = Text("…", style="dim")
SEED_CELL_WIDTH = 40
UNKNOWN_SHOWN = 3
AGREE_MARK = "≡ "


@dataclass(frozen=True)
class Column:
    """A run's column: what it is called and colored, and which checkpoint it shows."""

    name: str
    header: Text
    version: int
    group: tuple[str, ...] = ()  # the shown members of its seed group, itself among them (empty: not in a group)


class CellToken(NamedTuple):
    """What a cell's result depends on besides its seed: the checkpoint's version, the words to generate, the strategy."""

    version: int
    words: int
    top_k: int | None


def shorten(text: str, width: int = SEED_CELL_WIDTH) -> str:
    """``text``, or its first ``width - 1`` characters and an ellipsis."""
    return text if len(text) <= width else text[: width - 1] + "…"


def unknown_label(words: list[str]) -> str:
    """The unknown seed words, each once, the first few of them."""
    distinct = list(dict.fromkeys(words))
    more = f" +{len(distinct) - UNKNOWN_SHOWN} more" if len(distinct) > UNKNOWN_SHOWN else ""
    return ", ".join(shorten(word, 20) for word in distinct[:UNKNOWN_SHOWN]) + more


def epoch_label(epoch: float) -> str:
    """``3`` at an epoch end, ``2.41`` mid-epoch."""
    return f"{epoch:g}" if float(epoch).is_integer() else f"{epoch:.2f}"


def agreement(words: list[str], others: list[list[str]]) -> list[bool]:
    """For each of ``words``, whether every other member of its seed group has the same word at that position."""
    return [all(i < len(other) and other[i] == word for other in others) for i, word in enumerate(words)]


def cell_text(result: Result | None, epoch: float | None = None, agreed: list[bool] | None = None) -> Text:
    """A continuation as a table cell: the weights' epoch, unknown seed words flagged, errors in red; in a seed group
    (``agreed``, per word) the words every member continues with are underlined, and ``≡`` marks a continuation all agree on."""
    if result is None:
        return PENDING
    if isinstance(result, str):
        return Text(f"⚠ {result}", style="red")
    text = Text(f"ep {epoch_label(epoch)} · ", style="dim") if epoch is not None else Text()
    if result.unknown_words:
        text.append(f"⚠ unknown: {unknown_label(result.unknown_words)} ", style="yellow")
    if agreed is None:
        text.append(result.text)
        return text
    if agreed and all(agreed):
        text.append(AGREE_MARK, style="bold green")
    for i, (word, same) in enumerate(zip(result.words, agreed, strict=True)):
        text.append(" " * (i > 0) + word, style="underline" if same else "")
    return text


def markdown_cell(result: Result | None, epoch: float | None = None) -> str:
    if result is None:
        return ""
    if isinstance(result, str):
        return f"({result})"
    unknown = f"[unknown: {', '.join(dict.fromkeys(result.unknown_words))}] " if result.unknown_words else ""
    return unknown + result.text + (f" (epoch {epoch_label(epoch)})" if epoch is not None else "")


class ContinuationsTable(DataTable[Text | str]):
    """Seeds × runs; ``d`` unpins the seed under the cursor."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("d", "remove_seed", "Unpin seed"),
    ]

    class SeedRemoved(Message):
        """The user unpinned a seed from the table."""

        def __init__(self, seed: str) -> None:
            super().__init__()
            self.seed = seed

    def action_remove_seed(self) -> None:
        """Unpin the seed of the row under the cursor."""
        if self.row_count:
            seed = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
            if seed is not None:
                self.post_message(self.SeedRemoved(seed))


class GenerationPanel(Vertical):
    """Seed field, words count, strategy switch, the continuations table and the step-by-step view."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("down", "focus_table", "To the table", show=False),
        Binding("s", "toggle_sampling", "Greedy/top-5"),
        Binding("y", "copy_markdown", "Copy Markdown"),
        Binding("m", "export_markdown", "Save Markdown", show=False),
    ]

    class ContinuationReady(Message):
        """One cell computed: a ``Continuation`` or the sentence saying why there is none, and the weights' epoch."""

        def __init__(self, seed: str, run: str, token: CellToken, result: Result, epoch: float | None) -> None:
            super().__init__()
            self.seed = seed
            self.run = run
            self.token = token
            self.result = result
            self.epoch = epoch

    DEFAULT_CSS = """
    GenerationPanel #seed-row { height: 1; margin: 1 1 0 1; }
    GenerationPanel #seed-row Label { padding: 0 1 0 0; color: $text-muted; }
    GenerationPanel #seed-text { width: 1fr; }
    GenerationPanel #words { width: 6; }
    GenerationPanel #sampling { border: none; height: 1; padding: 0; }
    GenerationPanel #words-label, GenerationPanel #sampling-label { padding-left: 2; }
    GenerationPanel #continuations { height: 1fr; margin-top: 1; }
    GenerationPanel #steps { height: auto; max-height: 50%; padding: 0 1; color: $text-muted; }
    """

    def __init__(self, checkpoints: Path, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.checkpoints = Path(checkpoints)
        self.seeds: list[str] = []
        self.columns: list[Column] = []
        self.results: dict[tuple[str, str], tuple[CellToken, Result]] = {}  # (seed, run) → the cell's token and result
        self.epochs: dict[tuple[str, str], float] = {}  # (seed, run) → epoch of the weights that wrote the cell
        self._workers: dict[str, Worker[None]] = {}

    def compose(self) -> ComposeResult:
        with Horizontal(id="seed-row"):
            yield Label("Seed")
            yield OrderedInput(placeholder="seed text, e.g. new york (Enter pins it)", id="seed-text", compact=True)
            yield Label("Words", id="words-label")
            yield OrderedInput(str(DEFAULT_WORDS), id="words", type="integer", compact=True)
            yield Label("top-5 sampling", id="sampling-label")
            yield Switch(False, id="sampling")
        yield ContinuationsTable(id="continuations", cursor_type="cell", zebra_stripes=True)
        yield Static("", id="steps")

    def on_mount(self) -> None:
        self._rebuild_table()

    def on_key(self, event: events.Key) -> None:
        """A printable key that is no key in force (the table's, this panel's, the app's) moves to the seed field and is
        typed there (key events reach widgets before bindings run, so a bound key must be let through)."""
        table_focused = isinstance(self.app.focused, ContinuationsTable)
        if table_focused and event.is_printable and event.character and event.key not in self.screen.active_bindings:
            seed = self.query_one("#seed-text", Input)
            seed.select_on_focus = False  # else the focus would select the typed character, and the next key replace it
            seed.focus()
            seed.insert_text_at_cursor(event.character)
            seed.call_after_refresh(setattr, seed, "select_on_focus", True)
            event.stop()

    def action_focus_table(self) -> None:
        """Down from the seed row moves into the table."""
        self.query_one(ContinuationsTable).focus()

    def action_toggle_sampling(self) -> None:
        switch = self.query_one("#sampling", Switch)
        switch.value = not switch.value

    def action_export_markdown(self) -> None:
        """Save the table as a Markdown file (:mod:`tui.export`)."""
        from tui.export import save_export

        try:
            path = save_export("generations", "md", (self.markdown() + "\n").encode("utf-8"))
        except OSError as error:
            self.notify(f"The table could not be saved ({error.strerror or error}).", title="Export", severity="error")
            return
        self.notify(f"Saved {len(self.seeds)} seed(s) × {len(self.columns)} run(s) to {path}", title="Export")

    def action_copy_markdown(self) -> None:
        """Copy the table as Markdown (OSC 52: the terminal's clipboard, over SSH too)."""
        self.app.copy_to_clipboard(self.markdown())
        self.notify(f"Copied {len(self.seeds)} seed(s) × {len(self.columns)} run(s), {self.strategy_name}, as Markdown.")

    # What is shown -----------------------------------------------------------------------------

    @property
    def words(self) -> int:
        text = self.query_one("#words", Input).value
        return int(text) if text.isdigit() and 1 <= int(text) <= MAX_WORDS else DEFAULT_WORDS

    @property
    def top_k(self) -> int | None:
        return SAMPLING_TOP_K if self.query_one("#sampling", Switch).value else None

    @property
    def strategy_name(self) -> str:
        return "greedy" if self.top_k is None else f"top-{self.top_k} sampling (seed 0)"

    def token(self, column: Column) -> CellToken:
        """What the cells of ``column`` depend on besides their seeds."""
        return CellToken(column.version, self.words, self.top_k)

    def show_runs(self, runs: list[RunState]) -> None:
        """Make the columns the given runs (those with a checkpoint), regenerating what is stale."""
        with_checkpoint = [run for run in runs if run.has_checkpoint]
        columns = [
            Column(
                run.name,
                Text(f"#{run.number} {run.name}", style=f"bold {run.color}"),
                run.checkpoint_version,
                tuple(group.names) if group.n > 1 else (),
            )
            for group in seed_groups(with_checkpoint)
            for run in group.members
        ]  # a seed group's members side by side
        if [c.name for c in columns] != [c.name for c in self.columns]:
            self.columns = columns
            self._rebuild_table()
        else:
            self.columns = columns
        self._generate_stale()

    def rename_run(self, old: str, new: str) -> None:
        """A shown run is called ``new`` now: its cells stay (the next :meth:`show_runs` names its column)."""
        _rename_cells(self.results, old, new)
        _rename_cells(self.epochs, old, new)
        worker = self._workers.pop(old, None)
        if worker is not None:
            worker.cancel()  # it loads the old folder's name: the next show_runs generates what is missing

    def forget_run(self, name: str) -> None:
        """Run ``name`` is gone (deleted): its cells go, so a later run by that name starts afresh."""
        for store in (self.results, self.epochs):
            for key in [key for key in store if key[1] == name]:
                del store[key]
        worker = self._workers.pop(name, None)
        if worker is not None:
            worker.cancel()

    def add_seed(self, seed: str) -> None:
        """Pin a seed text (once) and generate its row."""
        seed = " ".join(seed.split())
        if not seed or seed in self.seeds:
            return
        self.seeds.append(seed)
        table = self.query_one(ContinuationsTable)
        table.add_row(shorten(seed), *(PENDING for _ in self.columns), key=seed)
        self._generate_stale()
        self._update_hint()

    def _rebuild_table(self) -> None:
        table = self.query_one(ContinuationsTable)
        table.clear(columns=True)
        table.add_column("seed", key="seed")
        for column in self.columns:
            table.add_column(column.header, key=column.name)
        for seed in self.seeds:
            table.add_row(shorten(seed), *(self._cell(seed, column) for column in self.columns), key=seed)
        self._update_hint()

    def _cell(self, seed: str, column: Column) -> Text:
        return cell_text(self._current(seed, column), self.epochs.get((seed, column.name)), self._agreed(seed, column))

    def _agreed(self, seed: str, column: Column) -> list[bool] | None:
        """Per word of the column's continuation, whether its group's other members continue alike (None: no group yet)."""
        mine = self._current(seed, column)
        if not column.group or mine is None or isinstance(mine, str):
            return None
        others = [self._current(seed, other) for other in self.columns if other.name in column.group and other is not column]
        if any(other is None or isinstance(other, str) for other in others):
            return None  # until every member has one
        return agreement(mine.words, [other.words for other in others if other is not None and not isinstance(other, str)])

    def _current(self, seed: str, column: Column) -> Result | None:
        """The cell's result if it is up to date, else None."""
        stored = self.results.get((seed, column.name))
        return stored[1] if stored is not None and stored[0] == self.token(column) else None

    def _update_hint(self) -> None:
        if not self.columns:
            hint = "No run with a checkpoint is shown: train one (F2, ctrl+t), or show a saved run in the runs list (space)."
        elif not self.seeds:
            hint = "Type a seed text above and press Enter to pin it; each shown run continues it."
        else:
            hint = f"{self.strategy_name}, {self.words} words. Move over a cell to see its continuation step by step."
        self.query_one("#steps", Static).update(hint)

    # Generating --------------------------------------------------------------------------------

    def _generate_stale(self) -> None:
        for column in self.columns:
            token = self.token(column)
            stale = [
                seed for seed in self.seeds if (stored := self.results.get((seed, column.name))) is None or stored[0] != token
            ]
            if stale:
                previous = self._workers.pop(column.name, None)
                if previous is not None:
                    previous.cancel()
                self._workers[column.name] = self._generate(column.name, token, stale)

    @work(thread=True, group="generate", exit_on_error=False)
    def _generate(self, run_name: str, token: CellToken, seeds: list[str]) -> None:
        """Worker thread: load the run's latest checkpoint and continue each seed, posting each cell."""
        from engine.generate import Strategy, generate

        worker = get_current_worker()
        try:
            run = self._load(run_name)
        except UserError as error:
            for seed in seeds:
                self.post_message(self.ContinuationReady(seed, run_name, token, str(error), None))
            return
        for seed in seeds:
            if worker.is_cancelled:
                return
            try:
                result: Result = generate(run, seed, token.words, Strategy(top_k=token.top_k))
            except UserError as error:
                result = str(error)
            self.post_message(self.ContinuationReady(seed, run_name, token, result, run.record.epoch_progress))

    def _load(self, run_name: str) -> LoadedRun:
        """Load a run, retrying briefly: a save that lands between reading run.json and its weights file is not an error."""
        from engine.runs.checkpoint import load_run

        for _ in range(LOAD_ATTEMPTS - 1):
            try:
                return load_run(self.checkpoints, run_name, with_metrics=False)
            except UserError:
                time.sleep(LOAD_RETRY_S)
        return load_run(self.checkpoints, run_name)

    @on(ContinuationReady)
    def _continuation_ready(self, message: ContinuationReady) -> None:
        column = next((c for c in self.columns if c.name == message.run), None)
        if column is None or message.token != self.token(column) or message.seed not in self.seeds:
            return
        self.results[(message.seed, message.run)] = (message.token, message.result)
        if message.epoch is None:
            self.epochs.pop((message.seed, message.run), None)
        else:
            self.epochs[(message.seed, message.run)] = message.epoch
        table = self.query_one(ContinuationsTable)
        for member in [c for c in self.columns if c.name in column.group] or [column]:  # its group's agreement changed too
            table.update_cell(message.seed, member.name, self._cell(message.seed, member), update_width=True)
        if table.row_count:
            cursor = table.coordinate_to_cell_key(table.cursor_coordinate)
            if cursor.row_key == message.seed and cursor.column_key == message.run:
                self._show_steps(message.seed, message.run)

    # Events ------------------------------------------------------------------------------------

    @on(Input.Submitted, "#seed-text")
    def _seed_submitted(self, event: Input.Submitted) -> None:
        self.add_seed(event.value)
        event.input.value = ""

    @on(Input.Changed, "#words")
    def _words_changed(self, event: Input.Changed) -> None:
        text = event.value
        valid = text.isdigit() and 1 <= int(text) <= MAX_WORDS
        event.input.set_class(not valid, "-invalid")
        if valid:
            self._refresh_all()

    @on(Switch.Changed, "#sampling")
    def _sampling_changed(self) -> None:
        self._refresh_all()
        self.notify(f"Generation: {self.strategy_name}.")

    @on(ContinuationsTable.SeedRemoved)
    def _seed_removed(self, message: ContinuationsTable.SeedRemoved) -> None:
        if message.seed in self.seeds:
            self.seeds.remove(message.seed)
            self.results = {key: value for key, value in self.results.items() if key[0] != message.seed}
            self.epochs = {key: value for key, value in self.epochs.items() if key[0] != message.seed}
            self._rebuild_table()  # columns shrink back to what the remaining seeds need

    @on(DataTable.CellHighlighted, "#continuations")
    def _cell_highlighted(self, event: DataTable.CellHighlighted) -> None:
        self._show_steps(event.cell_key.row_key.value, event.cell_key.column_key.value)

    def _refresh_all(self) -> None:
        table = self.query_one(ContinuationsTable)
        for seed in self.seeds:
            for column in self.columns:
                table.update_cell(seed, column.name, self._cell(seed, column))
        self._generate_stale()
        self._update_hint()

    def _show_steps(self, seed: str | None, run_name: str | None) -> None:
        """The highlighted continuation word by word, or the hint when the cell is the seed itself."""
        column = next((c for c in self.columns if c.name == run_name), None)
        if column is None or seed is None:
            self._update_hint()
            return
        result = self._current(seed, column)
        steps = self.query_one("#steps", Static)
        if result is None:
            steps.update(f"{run_name} on {seed!r}: generating…")
        elif isinstance(result, str):
            steps.update(Text(result, style="red"))
        else:
            steps.update(steps_table(result, self.epochs.get((seed, column.name))))

    # Export ------------------------------------------------------------------------------------

    def markdown(self) -> str:
        """The table as GitHub Markdown (engine.formatting.markdown_table)."""
        from engine.formatting import markdown_table

        rows = [
            [seed, *(markdown_cell(self._current(seed, column), self.epochs.get((seed, column.name))) for column in self.columns)]
            for seed in self.seeds
        ]
        return markdown_table(["seed", *(column.name for column in self.columns)], rows)


def _rename_cells(store: dict[tuple[str, str], Stored], old: str, new: str) -> None:
    """The entries of run ``old`` in a (seed, run) → value store, under ``new``."""
    for seed in [seed for seed, run in store if run == old]:
        store[(seed, new)] = store.pop((seed, old))


def steps_table(continuation: Continuation, epoch: float | None = None) -> Table:
    """Each generated word with its probability, the entropy of its distribution and the top 3.

    The title names the run, the weights' epoch and the seed (cut when long: the caption then gives it whole).
    """
    unknown = f"; unknown seed words: {unknown_label(continuation.unknown_words)}" if continuation.unknown_words else ""
    at = f" (epoch {epoch_label(epoch)})" if epoch is not None else ""
    seed = shorten(continuation.seed_text)
    table = Table(
        title=f"{continuation.run_name}{at} · {seed!r} · {continuation.strategy}{unknown}",
        caption=f"seed: {continuation.seed_text}" if seed != continuation.seed_text else None,
        title_justify="left",
        caption_justify="left",
        box=None,
        padding=(0, 1),
        expand=False,
    )
    table.add_column("#", justify="right")
    table.add_column("word")
    table.add_column("p", justify="right")
    table.add_column(f"entropy ({continuation.entropy_definition})", justify="right")
    table.add_column("top 3 alternatives")
    for index, step in enumerate(continuation.steps, 1):
        alternatives = ", ".join(f"{a.word} {a.probability:.3g}" for a in step.alternatives)
        table.add_row(str(index), step.word, f"{step.probability:.3g}", f"{step.entropy:.4g}", alternatives)
    return table
