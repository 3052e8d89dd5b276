"""The lm-explorer app: Setup, Plots and Generate tabs over a runs list, keyboard first.

The app is a view and a remote control over the checkpoints folder: the engine's controller
queues runs and starts them in a detached sweep runner (they train side by side and outlive the
app and its terminal), stops and resumes them through their folders, and says how each stands. A
:class:`~tui.follow.Follower` thread looks at every run in the folder (this app's, headless ones,
an earlier session's) and the lines its trainer appends, and updates the
:class:`~tui.session.Session` that the runs list, the plots and the generation table draw from.
Quitting while runs this app started train asks: leave them training (the default) or stop them with a
checkpoint; runs other processes started are named and never stopped. SIGHUP (the terminal is gone) leaves
them training; SIGTERM stops the app's own first.

Nothing here imports torch at module level: engine modules that need it load in workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.css.query import NoMatches
from textual.widget import Widget
from textual.widgets import Footer, TabbedContent, TabPane

from engine.config.models import RunConfig
from engine.config.presets import build_run_config
from engine.errors import UserError
from engine.jobs.controller import Controller
from engine.jobs.executor import Executor
from engine.metric_table import COLLAPSE_SIGN, collapsed
from engine.runs.names import grid_names
from tui.client_gone import watch_input_hangup
from tui.commands import ExplorerCommands
from tui.follow import Follower, Observed
from tui.memory import SAVE_EVERY_S, MemoryKeeper, load_memory, recall_view, remember
from tui.run_actions import RunActions
from tui.screens.confirm_quit import ConfirmQuit, QuitChoice
from tui.screens.help import HelpScreen, Section
from tui.screens.run_detail import RunDetail
from tui.screens.sweep import SweepScreen
from tui.session import RunState, Session
from tui.widgets.generation import ContinuationsTable, GenerationPanel
from tui.widgets.plots import MetricPlots
from tui.widgets.runs_table import RunsFilter, RunsTable
from tui.widgets.setup_form import SetupForm
from tui.widgets.tabs import FocusTabs

TABLE_REFRESH_S = 0.5
HANDLED_SIGNALS = (signal.SIGHUP, signal.SIGTERM)
HANGUP_EXIT_S = 3.0
FOLLOW_AFTER_S = 0.2
STOP_WAIT_S = 120.0
READING_RUNS = "reading the checkpoints folder…"


class ExplorerApp(App[int]):
    """Choose an objective and weight, watch entropy, KL and losses live, compare runs' continuations."""

    CSS_PATH = Path(__file__).with_name("app.tcss")
    COMMANDS = App.COMMANDS | {ExplorerCommands}
    TITLE = "lm-explorer"
    AUTO_FOCUS = "#corpus"
    # Textual declares it `ClassVar[...] | None`, which mypy reads as an instance variable.
    VERTICAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [(0, "-short"), (36, "-tall")]  # type: ignore[misc]

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+t", "train", "Train", priority=True),
        Binding("f1", "help", "Help", priority=True),
        Binding("f2", "show_tab('setup')", "Setup tab", show=False, priority=True),
        Binding("f3", "show_tab('plots')", "Plots tab", show=False, priority=True),
        Binding("f4", "show_tab('generate')", "Generate tab", show=False, priority=True),
        Binding("f5", "focus_runs", "Runs list", show=False, priority=True),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(
        self,
        corpus_paths: list[str] | None = None,
        column: str | None = None,
        checkpoints: str = "checkpoints",
        device: str = "auto",
        executor: Executor | None = None,
    ) -> None:
        super().__init__()
        self.corpus_paths = list(corpus_paths or [])
        self.column = column
        self.checkpoints = Path(checkpoints)
        self.device = device
        self.session = Session()
        self.controller = Controller(self.checkpoints, executor)
        self.follower = Follower(self.controller, self.post_message)
        self.run_actions = RunActions(self)
        self._changed_rows: set[str] = set()
        self._attached = False
        self._shutting_down = False
        self.launched: set[str] = set()  # the runs this app started or resumed: quitting may stop these, never others
        self._unmounted = threading.Event()

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
            box.border_subtitle = READING_RUNS  # until the follower's first look at the folder lists them
            yield RunsFilter(
                placeholder="filter: words of the name, objective or status (escape clears)", id="runs-filter", compact=True
            )
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
        if self.is_web:  # served to a browser: when the server goes, so does the app (runs train on)
            loop = asyncio.get_running_loop()

            def hang_up_soon() -> None:
                loop.call_soon_threadsafe(self.hang_up)

            watch_input_hangup(0, hang_up_soon, self._unmounted)
        self.set_timer(FOLLOW_AFTER_S, self._start_following)  # after the first frame: reading runs loads torch
        self.memory = load_memory(self.checkpoints)
        self.memory_keeper = MemoryKeeper(self.checkpoints, self.memory)
        recall_view(self, self.memory)
        self.set_interval(SAVE_EVERY_S, self._keep_memory)

    def on_unmount(self) -> None:
        """The runs train on without the app; only the follower ends."""
        self.follower.close()
        self._unmounted.set()
        self._remove_signal_handlers()

    def exit(self, result: int | None = None, return_code: int = 0, message: Any = None) -> None:
        """Remember the form, seeds, shown runs and toggles for the next launch on this folder, then exit."""
        if not self._exit:
            self._keep_memory()
            with contextlib.suppress(AttributeError):  # an app that never finished mounting has no keeper
                self.memory_keeper.close()
        super().exit(result, return_code, message)

    def _keep_memory(self) -> None:
        """Save what changed in the form, seeds, shown runs, numbers and toggles (a crash then loses at most a second)."""
        # a read-only folder, or an app that never finished mounting: nothing to remember
        with contextlib.suppress(OSError, NoMatches, AttributeError):
            memory = remember(self)
            if not self._attached:  # the saved runs are not listed yet: the shown ones are still the remembered ones
                memory = memory.model_copy(update={"shown": self.memory.shown})
            self.memory_keeper.keep(memory)

    # Public API (also used by the benchmarks) ----------------------------------------------------

    def start_runs(self, configs: list[RunConfig]) -> None:
        """Queue one run per config and start them side by side (engine controller, detached runner)."""
        for config in configs:
            if self.session.get(config.name) is not None:
                raise UserError(f"A run named {config.name!r} is already in this session; give it another name.")
        device = configs[0].train.device if configs else self.device
        for name, config in zip(self.controller.start(configs, device=device), configs, strict=True):
            run = self.session.add(name, config.model_copy(update={"name": name}))
            self.launched.add(name)
            self.follower.follow(name)
            self._row_changed(run.name)
        self._runs_changed()

    def run_status(self, name: str) -> str:
        """queued, training, stopped, finished, diverged, failed or interrupted (the folder's word, as last seen)."""
        run = self.session.get(name)
        if run is None:
            raise KeyError(f"No run named {name!r} in this session.")
        return run.status

    # Following the folder -------------------------------------------------------------------------

    def _start_following(self) -> None:
        self.run_worker(self.follower.run, thread=True, group="follow", exit_on_error=False)

    def on_observed(self, message: Observed) -> None:
        """The follower's news: new runs, changed ones, new metric lines, folders gone."""
        if not self.is_running:
            return  # shutting down: the widgets are going away
        if not self._attached:
            # torch and the engine are loaded now: move the heap so far out of the collector's sight,
            # so that full collections (which hold the GIL) stay short while runs train.
            gc.freeze()
        runs_changed = False
        for update in sorted(
            message.updates, key=lambda update: update.view.created
        ):  # new runs are numbered in the order they were made
            view = update.view
            run = self.session.get(view.name)
            if run is None:
                if view.config is None or not (self.checkpoints / view.name).is_dir():
                    continue  # a look from before this app renamed or deleted it
                # Runs alive when the app starts (or started elsewhere later), and those shown when it last closed, are shown.
                shown = view.status in ("queued", "training") or view.name in self.memory.shown
                run = self.session.add(view.name, view.config, shown=shown, history_loaded=shown)
                if shown:
                    self.follower.follow(view.name)
                runs_changed = True
            before = (run.status, run.checkpoint_version)
            run.observe(view)
            if not update.followed:
                run.note_summary(update.lines, update.restart)
            elif update.restart:
                run.load_history(update.lines, update.definitions)
            else:
                if update.definitions and not run.definitions:
                    run.definitions = dict(update.definitions)
                run.add_lines(update.lines)
            if update.followed and (update.lines or update.restart):
                self.plots.mark_changed()
            if run.checkpoint_version != before[1]:
                runs_changed = True
            if run.status != before[0] and self._attached:
                self._announce(run, before[0])
            self._row_changed(run.name)
        for name in message.gone:
            run = self.session.get(name)
            if run is not None and not run.alive:
                self.session.remove(name)
                self._row_changed(name)
                runs_changed = True
        if runs_changed:
            self._runs_changed()
        if not self._attached:
            self._attached = True
            self.query_one("#runs-box").border_subtitle = ""
            self._refresh_rows()
            problems = [update.view for update in message.updates if update.view.problem]
            if problems:
                self.notify(
                    f"{len(problems)} saved run(s) cannot be read: {problems[0].problem}",
                    title="Saved runs",
                    severity="warning",
                    timeout=10,
                )

    def _announce(self, run: RunState, before: str) -> None:
        """A notification when a run this app shows changes status."""
        if run.status == "finished":
            self.notify(f"Run {run.name} finished its {run.config.train.epochs} epochs.", title="Finished")
        elif run.status == "stopped" and before == "training":
            self.notify(
                f"Run {run.name} stopped at epoch {run.epoch:.2f}; its checkpoint is saved, r resumes it.", title="Stopped"
            )
        elif run.status in ("diverged", "failed"):
            self.notify(
                f"Run {run.name} {run.status}: {run.message}", title=run.status.capitalize(), severity="error", timeout=10
            )
        elif run.status == "interrupted":
            self.notify(
                f"Run {run.name}'s trainer ended without saving its status; r resumes it from its last checkpoint.",
                title="Interrupted",
                severity="warning",
                timeout=10,
            )
        if run.status == "finished" and collapsed(run.metrics):
            self.notify(
                f"Run {run.name} predicts only {int(run.metrics[COLLAPSE_SIGN.key])} distinct words on validation: it has collapsed.",
                title="Collapsed",
                severity="warning",
                timeout=8,
            )

    # Drawing ----------------------------------------------------------------------------------------

    def _row_changed(self, name: str) -> None:
        self._changed_rows.add(name)

    def _refresh_rows(self) -> None:
        """Bring changed rows of the runs list up to date (a few times a second at most)."""
        if not self._changed_rows:
            return
        names = sorted(self._changed_rows)
        self._changed_rows.clear()
        runs = [run for name in names if (run := self.session.get(name)) is not None]
        self.runs_table.show_runs(runs, gone=[name for name in names if self.session.get(name) is None])

    def _runs_changed(self) -> None:
        """The set of shown runs or their checkpoints changed: plots and generation follow."""
        self.plots.mark_changed()
        self.generation.show_runs(self.session.shown)

    # Actions ----------------------------------------------------------------------------------------

    def action_train(self) -> None:
        """Start what the Setup form holds (one run, or a grid: one per weight and seed)."""
        self.form.request_train()

    @on(SetupForm.TrainRequested)
    def _train_requested(self, message: SetupForm.TrainRequested) -> None:
        built = [build_run_config("run", message.preset, overrides) for overrides in message.overrides]
        names = grid_names(message.name, built, message.varying)
        configs: list[RunConfig] = [config.model_copy(update={"name": name}) for config, name in zip(built, names, strict=True)]
        try:
            self.start_runs(configs)  # the controller makes each name unique on disk
        except UserError as error:
            self.notify(str(error), title="Not started", severity="error", timeout=10)
            return
        what = f"run {configs[0].name}" if len(configs) == 1 else f"a grid of {len(configs)} runs"
        self.notify(f"Started {what}; the runs train on if the app quits.", title="Training")
        self.action_show_tab("plots")

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

    def _highlighted(self) -> RunState | None:
        name = self.runs_table.highlighted_run
        run = self.session.get(name) if name else None
        if run is None:
            self.notify("No run is highlighted in the runs list (F5).", severity="warning")
        return run

    def action_continue_run(self) -> None:
        """Train the highlighted run further (asks how many epochs more)."""
        self.run_actions.continue_run()

    def action_rename_run(self) -> None:
        """Rename the highlighted run (asks for the name)."""
        self.run_actions.rename_run()

    def action_delete_run(self) -> None:
        """Delete the highlighted run and its folder (asks first)."""
        self.run_actions.delete_run()

    def action_toggle_run(self) -> None:
        """Show or hide the highlighted run (on a group row: every member) in the plots and the generation table."""
        group = self.runs_table.highlighted_group
        if group is not None:
            members, shown = set(group.names), {run.name for run in self.session.shown}
            self._show_runs(shown - members if members <= shown else shown | members)
            return
        run = self._highlighted()
        if run is None:
            return
        self._show_runs({shown.name for shown in self.session.shown} ^ {run.name})

    def action_show_only(self) -> None:
        """Show the highlighted run (on a group row: its members) alone in the plots and the generation table."""
        group = self.runs_table.highlighted_group
        if group is not None:
            self._show_runs(set(group.names))
            return
        run = self._highlighted()
        if run is not None:
            self._show_runs({run.name})

    def action_hide_all(self) -> None:
        """Hide every run from the plots and the generation table."""
        self._show_runs(set())

    def _show_runs(self, names: set[str]) -> None:
        """Show exactly ``names``: the follower reads a newly shown run's history and follows it, and lets go of hidden ones."""
        for run in self.session.runs.values():
            shown = run.name in names
            if run.shown != shown:
                run.shown = shown
                if shown:
                    run.history_loaded = True
                    self.follower.follow(run.name)
                else:
                    self.follower.unfollow(run.name)
                self._row_changed(run.name)
        self._refresh_rows()
        self._runs_changed()

    @on(MetricPlots.SweepRequested)
    def _sweep_requested(self, message: MetricPlots.SweepRequested) -> None:
        self.push_screen(SweepScreen(message.runs, message.metrics))

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
        """Stop the highlighted run (it saves a checkpoint), or keep a queued one from starting; any process's run."""
        run = self._highlighted()
        if run is None:
            return
        try:
            self.notify(self.controller.stop(run.name))
        except UserError as error:
            self.notify(str(error), severity="warning")
        self.follower.look_now()

    def action_resume_run(self) -> None:
        """Resume the highlighted stopped, interrupted, diverged or failed run from its checkpoint, detached."""
        run = self._highlighted()
        if run is None:
            return
        try:
            self.notify(self.controller.resume(run.name, self.device))
        except UserError as error:
            self.notify(str(error), severity="warning")
            return
        self.launched.add(run.name)
        self.run_actions.follow_again(run)

    async def action_quit(self) -> None:
        """Quit; while runs this app started train, ask whether to leave them training (the default) or stop them with a
        checkpoint. Runs other processes started (a headless ``train``, an earlier session) are named, never stopped."""
        if self._shutting_down:
            self.notify("Still waiting for the runs to save their checkpoints…")
            return
        own = self._own_alive()
        if not own:
            self.exit()
            return
        others = [run.name for run in self.session.alive if run.name not in self.launched]
        training = sum(run.status == "training" for run in own)
        self.push_screen(ConfirmQuit(training, len(own) - training, others), self._quit_answered)

    def _own_alive(self) -> list[RunState]:
        """The runs this app started or resumed that are training or queued."""
        return [run for run in self.session.alive if run.name in self.launched]

    def _quit_answered(self, choice: QuitChoice | None) -> None:
        if choice == "leave":
            self.exit()
        elif choice == "stop":
            self.shut_down()

    def shut_down(self, signum: int | None = None) -> None:
        """Stop every run this app started that is alive, wait until each has saved its checkpoint, then exit
        (128 + ``signum``). Runs other processes started train on."""
        if self._shutting_down:
            return
        self._shutting_down = True
        names = [run.name for run in self._own_alive()]
        for name in names:
            with contextlib.suppress(UserError):  # it ended on its own meanwhile
                self.controller.stop(name)
        if names:
            self.notify("Stopping the runs and saving their checkpoints…", timeout=30)
        self._exit_after_runs(names, signum)

    @work(thread=True, group="shutdown")
    def _exit_after_runs(self, names: list[str], signum: int | None) -> None:
        """Worker thread: wait (bounded) until none of ``names`` is alive in its folder, then exit."""
        deadline = time.monotonic() + STOP_WAIT_S
        while time.monotonic() < deadline and any(
            self.controller.runs.view(name).status in ("queued", "training") for name in names
        ):
            time.sleep(0.1)
        self.call_from_thread(self._exit_now, signum)

    def _exit_now(self, signum: int | None) -> None:
        return_code = 0 if signum is None else 128 + signum
        if signum == signal.SIGHUP:
            self._watchdog(return_code)
        self.exit(return_code=return_code)

    def hang_up(self) -> None:
        """The terminal is gone: exit at once, leaving the runs training (they are in their own sessions)."""
        self._exit_now(signal.SIGHUP)

    @staticmethod
    def _watchdog(return_code: int) -> None:
        """After SIGHUP restoring the terminal can block forever: end the process within ``HANGUP_EXIT_S`` whatever it does."""
        watchdog = threading.Timer(HANGUP_EXIT_S, os._exit, args=(return_code,))
        watchdog.daemon = True
        watchdog.start()

    # Signals ----------------------------------------------------------------------------------------

    def _install_signal_handlers(self) -> None:
        """SIGHUP (the SSH connection dropped): exit, runs train on. SIGTERM: stop the runs with checkpoints, then exit."""
        loop = asyncio.get_running_loop()
        for signum in HANDLED_SIGNALS:
            try:
                loop.add_signal_handler(
                    signum,
                    self.hang_up if signum == signal.SIGHUP else self.shut_down,
                    *(() if signum == signal.SIGHUP else (signum,)),
                )
            except (NotImplementedError, RuntimeError, ValueError):
                return  # not the main thread, or a platform without them: the default handlers stay

    def _remove_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in HANDLED_SIGNALS:
            try:
                loop.remove_signal_handler(signum)
            except (NotImplementedError, RuntimeError, ValueError):
                return

    def deliver_screenshot(
        self, filename: str | None = None, path: str | None = None, time_format: str | None = None
    ) -> str | None:
        """Screenshots go to the current directory (Textual's default, ~/Downloads, may not exist); the toast names the file."""
        from tui.export import export_folder

        return super().deliver_screenshot(filename, path or str(export_folder()), time_format)

    # Help and command palette -----------------------------------------------------------------------

    def help_sections(self) -> list[Section]:
        """Every key, taken from the bindings themselves so the help cannot drift from them."""

        def keys(bindings: Iterable[BindingType]) -> list[tuple[str, str]]:
            shown = (binding if isinstance(binding, Binding) else Binding(*binding) for binding in bindings)
            return [(self.get_key_display(binding), binding.description) for binding in shown]

        return [
            ("Everywhere", [*keys(self.BINDINGS), ("ctrl+p", "Command palette: the main actions by name")]),
            (
                "Setup tab",
                [
                    ("tab / shift+tab", "Next / previous field"),
                    ("enter", "Next field (in Corpus: load it now)"),
                    ("ctrl+t", "Train: one run, or one per weight when Weight holds a list"),
                ],
            ),
            (
                "Runs list (F5)",
                [
                    ("up / down", "Highlight a run"),
                    *keys(RunsTable.BINDINGS),
                    ("enter / escape", "In the filter line: back to the list / clear the filter"),
                ],
            ),
            ("Run details (i)", keys(RunDetail.BINDINGS)),
            ("Sweep view (w on the Plots tab)", keys(SweepScreen.BINDINGS)),
            ("Plots tab (F3)", [*keys(MetricPlots.BINDINGS), ("click", "In a pane: select it and put the cursor at that x")]),
            (
                "Generate tab (F4)",
                [
                    ("enter", "In the seed field: pin the seed"),
                    ("down", "From the seed row into the table"),
                    ("arrows", "Move over cells: the step-by-step view follows"),
                    *keys(GenerationPanel.BINDINGS[1:]),
                    *keys(ContinuationsTable.BINDINGS),
                ],
            ),
        ]
