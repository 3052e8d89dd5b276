"""The runs list's management keys: ``e`` trains a run more epochs, ``n`` renames it, ``d`` deletes it.

:class:`RunActions` does them for the app (:class:`tui.app.ExplorerApp`, whose ``action_continue_run``,
``action_rename_run`` and ``action_delete_run`` call it); it reaches the app only through
:class:`RunActionsHost`. Each asks in a small modal (:mod:`tui.screens.ask`) and then acts through the
engine, as the CLI does: more epochs through the controller
(:meth:`engine.jobs.controller.Controller.train_further`, a detached trainer), renaming and deleting
through :mod:`engine.runs.manage` (which refuses a run that trains, and never follows a link). The app
then follows the change: a renamed run keeps its number, color, shown state, history and
generations under its new name; a deleted one leaves the list, the plots and the generation table.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

from textual.notifications import SeverityLevel

from engine.errors import UserError
from tui.screens.ask import AskText, ConfirmDelete

if TYPE_CHECKING:
    from collections.abc import Callable

    from textual.screen import Screen

    from engine.jobs.controller import Controller
    from tui.follow import Follower
    from tui.session import RunState, Session
    from tui.widgets.generation import GenerationPanel
    from tui.widgets.runs_table import RunsTable

Answer = TypeVar("Answer")


class RunActionsHost(Protocol):
    """What the run actions act on: the app's folder, controller, session, follower and widgets."""

    checkpoints: Path
    device: str
    controller: Controller
    session: Session
    follower: Follower
    generation: GenerationPanel
    runs_table: RunsTable

    def notify(
        self, message: str, *, title: str = "", severity: SeverityLevel = "information", timeout: float | None = None
    ) -> None: ...
    def push_screen(self, screen: Screen[Answer], callback: Callable[[Answer | None], None]) -> object: ...
    def _highlighted(self) -> RunState | None: ...
    def _row_changed(self, name: str) -> None: ...
    def _refresh_rows(self) -> None: ...
    def _runs_changed(self) -> None: ...


class RunActions:
    """More epochs, rename and delete for the highlighted run of ``host``'s runs list."""

    def __init__(self, host: RunActionsHost) -> None:
        self.host = host

    def _settled_highlighted(self, when: str) -> RunState | None:
        """The highlighted run, unless none is or it is queued or training (then a warning saying ``when`` it can be done)."""
        run = self.host._highlighted()
        if run is not None and run.alive:
            self.host.notify(f"Run {run.name} is {run.status}; {when}.", severity="warning")
            return None
        return run

    def continue_run(self) -> None:
        """Ask how many more epochs, then train the highlighted saved run on to its planned epochs plus that many."""
        run = self._settled_highlighted("it can get more epochs once it has stopped or finished")
        if run is None:
            return
        planned = run.config.train.epochs
        prompt = (
            f"It has trained {run.epoch:.3g} of its {planned} planned epochs. How many epochs more than its {planned}? "
            f"It trains on from its last checkpoint to that total (as 'lm-explorer train --resume {run.name} --epochs TOTAL')."
        )
        self.host.push_screen(
            AskText(f"Train {run.name} further", prompt, str(planned), _whole_number, integer=True),
            lambda answer: self._continue(run, answer),
        )

    def _continue(self, run: RunState, answer: str | None) -> None:
        if answer is None:
            return
        try:
            self.host.notify(self.host.controller.train_further(run.name, int(answer), self.host.device), title="More epochs")
        except UserError as error:
            self.host.notify(str(error), severity="warning", timeout=10)
            return
        self.follow_again(run)

    def rename_run(self) -> None:
        """Ask for a new name, then rename the highlighted run (its folder) in place."""
        run = self._settled_highlighted("rename it once it has stopped or finished")
        if run is None:
            return
        self.host.push_screen(
            AskText(
                f"Rename {run.name}",
                "New name (letters, digits, '.', '_' or '-'; the run's folder takes it):",
                run.name,
                lambda text: self._name_problem(run.name, text),
            ),
            lambda answer: self._rename(run, answer),
        )

    def _name_problem(self, old: str, new: str) -> str | None:
        from engine.runs.names import check_name

        try:
            check_name(new, "New run name")
        except UserError as error:
            return str(error)
        if new != old and (self.host.checkpoints / new).exists():
            return f"A run named {new!r} already exists; choose another name."
        return None

    def _rename(self, run: RunState, answer: str | None) -> None:
        from engine.runs.manage import rename_run

        if answer is None or answer == run.name:
            return
        old = run.name
        try:
            self.host.notify(rename_run(self.host.checkpoints, old, answer), title="Renamed")
        except UserError as error:
            self.host.notify(str(error), severity="warning", timeout=10)
            return
        self.host.session.rename(old, answer)
        self.host.generation.rename_run(old, answer)
        if run.shown:
            self.host.follower.unfollow(old)
            self.host.follower.follow(answer)
        self.host._row_changed(old)  # no longer in the session: its row goes
        self.host._row_changed(answer)
        self.host._refresh_rows()
        self.host.runs_table.highlight(answer)
        self.host._runs_changed()

    def delete_run(self) -> None:
        """Ask, then delete the highlighted run and its folder (refused while it trains)."""
        from engine.runs.manage import describe, run_folder

        run = self.host._highlighted()
        if run is None:
            return
        try:
            what = describe(run_folder(self.host.checkpoints, run.name))
        except UserError as error:
            self.host.notify(str(error), severity="warning", timeout=10)
            return
        self.host.push_screen(ConfirmDelete(run.name, what), lambda answer: self._delete(run, answer))

    def _delete(self, run: RunState, answer: bool | None) -> None:
        from engine.runs.manage import delete_run

        if not answer:
            return
        try:
            self.host.notify(delete_run(self.host.checkpoints, run.name), title="Deleted")
        except UserError as error:
            self.host.notify(str(error), severity="warning", timeout=10)
            return
        self.host.follower.unfollow(run.name)
        self.host.generation.forget_run(run.name)
        self.host.session.remove(run.name)
        self.host._row_changed(run.name)
        self.host._refresh_rows()
        self.host._runs_changed()

    def follow_again(self, run: RunState) -> None:
        """A run that trains again is shown and followed (as ``r`` does)."""
        if not run.shown:
            run.shown = True
            self.host.follower.follow(run.name)
            self.host._runs_changed()
        self.host._row_changed(run.name)
        self.host.follower.look_now()


def _whole_number(text: str) -> str | None:
    """Why ``text`` is not a count of epochs to add, or None."""
    if not text.isdigit() or int(text) < 1:
        return f"Give a whole number of epochs of at least 1, not {text!r}."
    return None
