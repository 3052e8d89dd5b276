"""The lm-explorer app: Setup, Plots and Generate tabs over a runs list, keyboard first.

Each run trains in its own process, relayed by a thread worker (:mod:`tui.training`); its events
arrive as messages and update the :class:`~tui.session.Session`, which the runs list, the plots
and the generation table draw from. At most ``MAX_PARALLEL_RUNS`` train at once; the rest wait
in a queue. Quitting while runs train asks first, then stops them and waits for their
checkpoints; SIGHUP and SIGTERM do the same without asking.

Nothing here imports torch at module level: engine modules that need it load in workers.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import threading
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import Footer, TabbedContent, TabPane
from textual.worker import Worker, WorkerCancelled, WorkerError, WorkerFailed, WorkerState

from engine.config import RunConfig, build_run_config
from engine.errors import UserError
from engine.events import CheckpointSaved, EpochMetrics, RunDiverged, RunFailed, RunFinished, RunStarted, RunStopped
from tui.commands import ExplorerCommands
from tui.memory import load_memory, recall_view, remember, save_memory
from tui.screens.confirm_quit import ConfirmQuit
from tui.screens.help import HelpScreen, Section
from tui.screens.run_detail import RunDetail
from tui.session import Session, saved_status
from tui.training import HistoryLoaded, Job, JobRefused, RunHandle, TrainingEvent, load_history, train
from tui.widgets.generation import ContinuationsTable, GenerationPanel
from tui.widgets.plots import MetricPlots
from tui.widgets.runs_table import RunsFilter, RunsTable
from tui.widgets.setup_form import SetupForm, run_names
from tui.widgets.tabs import FocusTabs

MAX_PARALLEL_RUNS = 1
TABLE_REFRESH_S = 0.5
HANDLED_SIGNALS = (signal.SIGHUP, signal.SIGTERM)
HANGUP_EXIT_S = 3.0
SAVED_RUNS_AFTER_S = 0.2


class ExplorerApp(App[int]):
    """Choose an objective and weight, watch entropy, KL and losses live, compare runs' continuations."""

    CSS_PATH = Path(__file__).with_name("app.tcss")
    COMMANDS = App.COMMANDS | {ExplorerCommands}
    TITLE = "lm-explorer"
    AUTO_FOCUS = "#corpus"
    VERTICAL_BREAKPOINTS = [(0, "-short"), (36, "-tall")]

    BINDINGS = [
        Binding("ctrl+t", "train", "Train", priority=True),
        Binding("f1", "help", "Help", priority=True),
        Binding("f2", "show_tab('setup')", "Setup tab", show=False, priority=True),
        Binding("f3", "show_tab('plots')", "Plots tab", show=False, priority=True),
        Binding("f4", "show_tab('generate')", "Generate tab", show=False, priority=True),
        Binding("f5", "focus_runs", "Runs list", show=False, priority=True),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(self, corpus_paths: list[str] | None = None, column: str | None = None,
                 checkpoints: str = "checkpoints", device: str = "auto") -> None:
        super().__init__()
        self.corpus_paths = list(corpus_paths or [])
        self.column = column
        self.checkpoints = Path(checkpoints)
        self.device = device
        self.session = Session()
        self._queue: deque[Job] = deque()
        self._training: set[str] = set()
        self._handles: dict[str, RunHandle] = {}
        self._stop_requested: set[str] = set()
        self._changed_rows: set[str] = set()
        self._shutting_down = False

    def compose(self) -> ComposeResult:
        with FocusTabs(initial="setup", id="tabs"):
            with TabPane("F2 Setup", id="setup"):
                yield SetupForm(self.corpus_paths, self.column, self.device, id="form")
            with TabPane("F3 Plots", id="plots"):
                yield MetricPlots(self.session, self.checkpoints, id="plot-grid")
            with TabPane("F4 Generate", id="generate"):
                yield GenerationPanel(self.checkpoints, id="generation")
        with Vertical(id="runs-box") as box:
            box.border_title = "F5 Runs"
            yield RunsFilter(placeholder="filter: words of the name, objective or status (escape clears)", id="runs-filter", compact=True)
            yield RunsTable(id="runs")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        # The main screen's widgets, kept so that handlers reach them while a modal screen is on top.
        self.form = self.query_one(SetupForm)
        self.plots = self.query_one(MetricPlots)
        self.generation = self.query_one(GenerationPanel)
        self.runs_table = self.query_one(RunsTable)
        self.tabs = self.query_one(TabbedContent)
        self.set_interval(TABLE_REFRESH_S, self._refresh_rows)
        self._install_signal_handlers()
        self.set_timer(SAVED_RUNS_AFTER_S, self._list_saved_runs)  # after the first frame: listing loads torch
        self.memory = load_memory(self.checkpoints)
        recall_view(self, self.memory)

    def on_unmount(self) -> None:
        """Whatever the way out, no run keeps training after the app is gone."""
        for handle in list(self._handles.values()):
            handle.stop()
        self._remove_signal_handlers()

    def exit(self, result: int | None = None, return_code: int = 0, message: Any = None) -> None:
        """Remember the form, seeds, shown runs and toggles for the next launch on this folder, then exit."""
        if not self._exit:
            try:
                save_memory(self.checkpoints, remember(self))
            except (OSError, NoMatches):
                pass  # a read-only folder, or an app that never finished mounting: nothing to remember
        super().exit(result, return_code, message)

    # Public API (also used by the benchmarks) ----------------------------------------------------

    def start_runs(self, configs: list[RunConfig]) -> None:
        """Queue one run per config; they start as soon as fewer than ``MAX_PARALLEL_RUNS`` train."""
        for config in configs:
            if self.session.get(config.name) is not None:
                raise UserError(f"A run named {config.name!r} is already in this session; give it another name.")
        for config in configs:
            run = self.session.add(config.name, config)
            self._queue.append(Job(config.name, config=config))
            self._row_changed(run.name)
        self._start_queued()
        self._runs_changed()

    def run_status(self, name: str) -> str:
        """queued, training, finished, stopped, diverged or failed."""
        run = self.session.get(name)
        if run is None:
            raise KeyError(f"No run named {name!r} in this session.")
        return run.status

    # Queue and workers ----------------------------------------------------------------------------

    def _start_queued(self) -> None:
        while self._queue and len(self._training) < MAX_PARALLEL_RUNS and not self._shutting_down:
            job = self._queue.popleft()
            self._training.add(job.name)
            self.run_worker(lambda job=job: train(job, self.checkpoints, self.device, self.post_message, self._registrar(job.name)),
                            name=job.name, group="training", thread=True, exit_on_error=False)

    def _registrar(self, name: str):
        """A callback for the worker thread: keep the run's handle, stopping it at once if a stop came first."""
        def register(handle: RunHandle) -> None:
            self._handles[name] = handle
            if name in self._stop_requested:
                handle.stop()
        return register

    def _stop_run(self, name: str) -> None:
        self._stop_requested.add(name)
        handle = self._handles.get(name)
        if handle is not None:
            handle.stop()

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.group != "training" or event.state not in (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            return
        name = worker.name
        self._training.discard(name)
        self._handles.pop(name, None)
        self._stop_requested.discard(name)
        run = self.session.get(name)
        if event.state == WorkerState.ERROR and run is not None:
            run.status, run.message = "failed", f"{type(worker.error).__name__}: {worker.error}"
            self.notify(f"Run {name} failed: {run.message}", title="Run failed", severity="error", timeout=10)
            self._row_changed(name)
        self._start_queued()

    def on_training_event(self, message: TrainingEvent) -> None:
        event = message.event
        run = self.session.get(event.run_name)
        if run is None:
            return
        run.apply(event)
        self._row_changed(run.name)
        self.plots.mark_changed()
        if isinstance(event, (RunStarted, CheckpointSaved)):
            self._runs_changed()
        if isinstance(event, EpochMetrics) and event.collapsed:
            self.notify(f"Run {run.name} predicts only {int(event.metrics['distinct_predictions'])} distinct words on "
                        "validation: it has collapsed.", title="Collapsed", severity="warning", timeout=8)
        elif isinstance(event, RunFinished):
            self.notify(f"Run {run.name} finished its {run.config.train.epochs} epochs.", title="Finished")
        elif isinstance(event, RunStopped):
            self.notify(f"Run {run.name} stopped at epoch {event.epoch:.2f}; its checkpoint is saved, r resumes it.", title="Stopped")
        elif isinstance(event, RunDiverged):
            self.notify(f"Run {run.name} diverged: {event.message}", title="Diverged", severity="error", timeout=10)
        elif isinstance(event, RunFailed):
            self.notify(f"Run {run.name} failed: {event.message}", title="Run failed", severity="error", timeout=10)

    def on_job_refused(self, message: JobRefused) -> None:
        run = self.session.get(message.job.name)
        if run is not None:
            run.status = message.job.previous_status if message.job.resume else "failed"
            run.message = message.message
            self._row_changed(run.name)
        self.notify(message.message, title=f"Run {message.job.name} did not start", severity="error", timeout=10)

    def on_history_loaded(self, message: HistoryLoaded) -> None:
        run = self.session.get(message.name)
        if run is not None:
            run.load_history(message.lines, message.definitions)
            self._row_changed(run.name)  # its best values are known now
            self.plots.mark_changed()

    # Saved runs -------------------------------------------------------------------------------------

    def _list_saved_runs(self) -> None:
        self.run_worker(self._read_saved_runs, thread=True, group="saved-runs", exit_on_error=False)

    def _read_saved_runs(self) -> None:
        """Worker thread: list the runs under the checkpoints folder (this also loads torch, off the UI thread)."""
        from engine.checkpoint import list_runs

        listings = list_runs(self.checkpoints)
        self.call_from_thread(self._add_saved_runs, listings)

    def _add_saved_runs(self, listings: list[Any]) -> None:
        # torch and the engine are loaded now: move the heap so far out of the collector's sight,
        # so that full collections (which hold the GIL) stay short while runs train.
        gc.freeze()
        unreadable = [item for item in listings if item.record is None]
        for item in listings:
            record = item.record
            if record is None or self.session.get(record.name) is not None:
                continue
            run = self.session.add(record.name, record.config, status=saved_status(record.status), shown=False,
                                   epoch=record.epoch_progress, metrics=dict(record.metrics), message=record.message,
                                   progress=record.step / max(record.steps_per_epoch * record.config.train.epochs, 1),
                                   checkpoint_version=1, history_loaded=False)
            self._row_changed(run.name)
        self._show_runs({name for name in self.memory.shown if self.session.get(name) is not None} | {r.name for r in self.session.shown})
        self._refresh_rows()
        if unreadable:
            self.notify(f"{len(unreadable)} saved run(s) cannot be read: {unreadable[0].problem}", title="Saved runs",
                        severity="warning", timeout=10)

    def _load_history(self, name: str) -> None:
        def work() -> None:
            try:
                self.post_message(load_history(self.checkpoints, name))
            except UserError as error:
                self.call_from_thread(self.notify, str(error), title=f"Run {name} not loaded", severity="error")
        self.run_worker(work, thread=True, group="history", exit_on_error=False)

    # Drawing ----------------------------------------------------------------------------------------

    def _row_changed(self, name: str) -> None:
        self._changed_rows.add(name)

    def _refresh_rows(self) -> None:
        """Bring changed rows of the runs list up to date (a few times a second at most)."""
        if not self._changed_rows:
            return
        table = self.runs_table
        for name in sorted(self._changed_rows):
            run = self.session.get(name)
            if run is None:
                table.drop_run(name)
            else:
                table.show_run(run)
        self._changed_rows.clear()

    def _runs_changed(self) -> None:
        """The set of shown runs or their checkpoints changed: plots and generation follow."""
        self.plots.mark_changed()
        self.generation.show_runs(self.session.shown)

    # Actions ----------------------------------------------------------------------------------------

    def action_train(self) -> None:
        """Start what the Setup form holds (one run, or one per weight)."""
        self.form.request_train()

    @on(SetupForm.TrainRequested)
    def _train_requested(self, message: SetupForm.TrainRequested) -> None:
        from engine.cli import default_run_name

        configs: list[RunConfig] = []
        weights = [overrides["objective.weight"] for overrides in message.overrides]
        stems = run_names(message.name, weights) if message.name else [None] * len(weights)
        for overrides, stem in zip(message.overrides, stems, strict=True):
            provisional = build_run_config("run", message.preset, overrides)
            name = self._fresh_name(stem or default_run_name(provisional), {config.name for config in configs})
            configs.append(build_run_config(name, message.preset, overrides))
        self.start_runs(configs)
        what = f"run {configs[0].name}" if len(configs) == 1 else f"a sweep of {len(configs)} runs"
        self.notify(f"Started {what}.", title="Training")
        self.action_show_tab("plots")

    def _fresh_name(self, base: str, taken: set[str]) -> str:
        """``base``, or ``base-2``, ``base-3``…: free in this session, on disk and among ``taken``."""
        candidate, n = base, 1
        while candidate in taken or self.session.get(candidate) is not None or (self.checkpoints / candidate).exists():
            n += 1
            candidate = f"{base}-{n}"
        return candidate

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.help_sections()))

    def action_show_tab(self, tab: str) -> None:
        self.tabs.active = tab
        focus = {"setup": "#corpus", "plots": "#plot-grid", "generate": "#seed-text"}[tab]
        self._focus_now(self.tabs.query_one(focus))

    def action_focus_runs(self) -> None:
        self._focus_now(self.runs_table)

    def _focus_now(self, widget: Widget) -> None:
        """Focus at once (``Widget.focus`` waits a turn), so keys typed right after an F-key land in the new place."""
        if widget.screen is self.screen:
            self.screen.set_focus(widget)

    def _highlighted(self) -> Any:
        name = self.runs_table.highlighted_run
        run = self.session.get(name) if name else None
        if run is None:
            self.notify("No run is highlighted in the runs list (F5).", severity="warning")
        return run

    def action_toggle_run(self) -> None:
        """Show or hide the highlighted run in the plots and the generation table."""
        run = self._highlighted()
        if run is None:
            return
        run.shown = not run.shown
        if run.shown and not run.history_loaded:
            run.history_loaded = True
            self._load_history(run.name)
        self._row_changed(run.name)
        self._refresh_rows()
        self._runs_changed()

    def action_show_only(self) -> None:
        """Show the highlighted run alone in the plots and the generation table."""
        run = self._highlighted()
        if run is not None:
            self._show_runs({run.name})

    def action_hide_all(self) -> None:
        """Hide every run from the plots and the generation table."""
        self._show_runs(set())

    def _show_runs(self, names: set[str]) -> None:
        for run in self.session.runs.values():
            if run.shown != (run.name in names):
                run.shown = run.name in names
                self._row_changed(run.name)
            if run.shown and not run.history_loaded:
                run.history_loaded = True
                self._load_history(run.name)
        self._refresh_rows()
        self._runs_changed()

    @on(RunsTable.DetailsRequested)
    def _details_requested(self, message: RunsTable.DetailsRequested) -> None:
        runs = [run for run in map(self.session.get, message.names) if run is not None]
        if runs:
            self.push_screen(RunDetail(runs, self.checkpoints), self._clone_into_form)

    def _clone_into_form(self, config: RunConfig | None) -> None:
        if config is not None:
            self.form.fill(config)
            self.action_show_tab("setup")
            self.notify(f"The Setup form holds {config.name}'s settings: change what you like, name it, ctrl+t.", title="Cloned")

    def action_stop_run(self) -> None:
        """Stop the highlighted run (it saves a checkpoint), or drop it from the queue."""
        run = self._highlighted()
        if run is None:
            return
        queued = next((job for job in self._queue if job.name == run.name), None)
        if queued is not None:
            self._queue.remove(queued)
            if queued.resume:
                run.status = queued.previous_status
            else:
                self.session.remove(run.name)
            self._row_changed(run.name)
            self._refresh_rows()
            self.notify(f"Run {run.name} left the queue.")
        elif run.name in self._training:
            self._stop_run(run.name)
            self.notify(f"Stopping {run.name} after this batch; its checkpoint will be saved.")
        else:
            self.notify(f"Run {run.name} is {run.status}, not training.", severity="warning")

    def action_resume_run(self) -> None:
        """Resume the highlighted stopped (or diverged, or failed) run from its checkpoint."""
        run = self._highlighted()
        if run is None:
            return
        if run.status in ("queued", "training"):
            self.notify(f"Run {run.name} is already {run.status}.", severity="warning")
            return
        if run.status == "finished":
            self.notify(f"Run {run.name} finished all its {run.config.train.epochs} epochs; there is nothing to resume.",
                        severity="warning")
            return
        if not run.has_checkpoint:
            self.notify(f"Run {run.name} never saved a checkpoint, so it cannot be resumed.", severity="warning")
            return
        job = Job(run.name, resume=True, previous_status=run.status, load_history=not run.history_loaded)
        run.status, run.history_loaded, run.shown = "queued", True, True
        self._queue.append(job)
        self._row_changed(run.name)
        self._start_queued()
        self._runs_changed()

    async def action_quit(self) -> None:
        """Quit; while runs train, ask first, then stop them and wait for their checkpoints."""
        if self._shutting_down:
            self.notify("Still waiting for the runs to save their checkpoints…")
            return
        training = len(self._training)
        if not training:
            self.exit()
            return
        self.push_screen(ConfirmQuit(training, len(self._queue)), self._quit_answered)

    def _quit_answered(self, stop: bool | None) -> None:
        if stop:
            self.shut_down()

    def shut_down(self, signum: int | None = None) -> None:
        """Stop every training run, wait until each has saved its checkpoint, then exit.

        After a signal the exit code is 128 + its number. After SIGHUP the terminal is gone and
        restoring it can block forever, so once the checkpoints are saved the process ends
        within ``HANGUP_EXIT_S`` whatever the terminal does.
        """
        if self._shutting_down:
            return
        self._shutting_down = True
        self._queue.clear()
        for name in list(self._training):
            self._stop_run(name)
        if self._training:
            self.notify("Stopping the runs and saving their checkpoints…", timeout=30)
        self.run_worker(self._exit_after_runs(signum), group="shutdown")

    async def _exit_after_runs(self, signum: int | None) -> None:
        for worker in [w for w in self.workers if w.group == "training"]:
            try:
                await worker.wait()
            except (WorkerCancelled, WorkerError, WorkerFailed):
                pass
        return_code = 0 if signum is None else 128 + signum
        if signum == signal.SIGHUP:
            watchdog = threading.Timer(HANGUP_EXIT_S, os._exit, args=(return_code,))
            watchdog.daemon = True
            watchdog.start()
        self.exit(return_code)

    # Signals ----------------------------------------------------------------------------------------

    def _install_signal_handlers(self) -> None:
        """SIGHUP (the SSH connection dropped) and SIGTERM: the same graceful shutdown as a confirmed quit."""
        loop = asyncio.get_running_loop()
        for signum in HANDLED_SIGNALS:
            try:
                loop.add_signal_handler(signum, self.shut_down, signum)
            except (NotImplementedError, RuntimeError, ValueError):
                return  # not the main thread, or a platform without them: the default handlers stay

    def _remove_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in HANDLED_SIGNALS:
            try:
                loop.remove_signal_handler(signum)
            except (NotImplementedError, RuntimeError, ValueError):
                return

    def deliver_screenshot(self, filename: str | None = None, path: str | None = None, time_format: str | None = None) -> str | None:
        """Screenshots go to the current directory (Textual's default, ~/Downloads, may not exist); the toast names the file."""
        from tui.export import export_folder

        return super().deliver_screenshot(filename, path or str(export_folder()), time_format)

    # Help and command palette -----------------------------------------------------------------------

    def help_sections(self) -> list[Section]:
        """Every key, taken from the bindings themselves so the help cannot drift from them."""
        def keys(bindings: Iterable[Binding]) -> list[tuple[str, str]]:
            return [(self.get_key_display(binding), binding.description) for binding in bindings]

        return [
            ("Everywhere", [*keys(self.BINDINGS), ("ctrl+p", "Command palette: the main actions by name")]),
            ("Setup tab", [("tab / shift+tab", "Next / previous field"), ("enter", "Next field (in Corpus: load it now)"),
                           ("ctrl+t", "Train: one run, or one per weight when Weight holds a list")]),
            ("Runs list (F5)", [("up / down", "Highlight a run"), *keys(RunsTable.BINDINGS),
                                ("enter / escape", "In the filter line: back to the list / clear the filter")]),
            ("Run details (i)", keys(RunDetail.BINDINGS)),
            ("Plots tab (F3)", keys(MetricPlots.BINDINGS)),
            ("Generate tab (F4)", [("enter", "In the seed field: pin the seed"), ("down", "From the seed row into the table"),
                                   ("arrows", "Move over cells: the step-by-step view follows"),
                                   *keys(GenerationPanel.BINDINGS[1:]), *keys(ContinuationsTable.BINDINGS)]),
        ]
