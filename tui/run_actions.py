"""The runs list's management keys: ``e`` trains a run more epochs, ``n`` renames it, ``d`` deletes it.

Mixed into :class:`tui.app.ExplorerApp`; each asks in a small modal (:mod:`tui.screens.ask`) and
then acts through the engine, as the CLI does: more epochs through the controller
(:meth:`engine.jobs.controller.Controller.train_further`, a detached trainer), renaming and deleting
through :mod:`engine.runs.manage` (which refuses a run that trains, and never follows a link). The app
then follows the change: a renamed run keeps its number, color, shown state, history and
generations under its new name; a deleted one leaves the list, the plots and the generation table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.errors import UserError
from tui.screens.ask import AskText, ConfirmDelete

if TYPE_CHECKING:
    from tui.session import RunState


class RunManagement:
    """``action_continue_run``, ``action_rename_run`` and ``action_delete_run`` for the app (``self`` is the ExplorerApp)."""

    def _settled_highlighted(self: Any, when: str) -> RunState | None:
        """The highlighted run, unless none is or it is queued or training (then a warning saying ``when`` it can be done)."""
        run: RunState | None = self._highlighted()
        if run is not None and run.alive:
            self.notify(f"Run {run.name} is {run.status}; {when}.", severity="warning")
            return None
        return run

    def action_continue_run(self: Any) -> None:
        """Ask how many more epochs, then train the highlighted saved run on to its planned epochs plus that many."""
        run = self._settled_highlighted("it can get more epochs once it has stopped or finished")
        if run is None:
            return
        planned = run.config.train.epochs
        prompt = (
            f"It has trained {run.epoch:.3g} of its {planned} planned epochs. How many epochs more than its {planned}? "
            f"It trains on from its last checkpoint to that total (as 'lm-explorer train --resume {run.name} --epochs TOTAL')."
        )
        self.push_screen(
            AskText(f"Train {run.name} further", prompt, str(planned), _whole_number, integer=True),
            lambda answer: self._continue(run, answer),
        )

    def _continue(self: Any, run: RunState, answer: str | None) -> None:
        if answer is None:
            return
        try:
            self.notify(self.controller.train_further(run.name, int(answer), self.device), title="More epochs")
        except UserError as error:
            self.notify(str(error), severity="warning", timeout=10)
            return
        self._follow_again(run)

    def action_rename_run(self: Any) -> None:
        """Ask for a new name, then rename the highlighted run (its folder) in place."""
        run = self._settled_highlighted("rename it once it has stopped or finished")
        if run is None:
            return
        self.push_screen(
            AskText(
                f"Rename {run.name}",
                "New name (letters, digits, '.', '_' or '-'; the run's folder takes it):",
                run.name,
                lambda text: self._name_problem(run.name, text),
            ),
            lambda answer: self._rename(run, answer),
        )

    def _name_problem(self: Any, old: str, new: str) -> str | None:
        from engine.runs.names import check_name

        try:
            check_name(new, "New run name")
        except UserError as error:
            return str(error)
        if new != old and (self.checkpoints / new).exists():
            return f"A run named {new!r} already exists; choose another name."
        return None

    def _rename(self: Any, run: RunState, answer: str | None) -> None:
        from engine.runs.manage import rename_run

        if answer is None or answer == run.name:
            return
        old = run.name
        try:
            self.notify(rename_run(self.checkpoints, old, answer), title="Renamed")
        except UserError as error:
            self.notify(str(error), severity="warning", timeout=10)
            return
        self.session.rename(old, answer)
        self.generation.rename_run(old, answer)
        if run.shown:
            self.follower.unfollow(old)
            self.follower.follow(answer)
        self.runs_table.drop_run(old)
        self._row_changed(answer)
        self._refresh_rows()
        self.runs_table.highlight(answer)
        self._runs_changed()

    def action_delete_run(self: Any) -> None:
        """Ask, then delete the highlighted run and its folder (refused while it trains)."""
        from engine.runs.manage import describe, run_folder

        run = self._highlighted()
        if run is None:
            return
        try:
            what = describe(run_folder(self.checkpoints, run.name))
        except UserError as error:
            self.notify(str(error), severity="warning", timeout=10)
            return
        self.push_screen(ConfirmDelete(run.name, what), lambda answer: self._delete(run, answer))

    def _delete(self: Any, run: RunState, answer: bool | None) -> None:
        from engine.runs.manage import delete_run

        if not answer:
            return
        try:
            self.notify(delete_run(self.checkpoints, run.name), title="Deleted")
        except UserError as error:
            self.notify(str(error), severity="warning", timeout=10)
            return
        self.follower.unfollow(run.name)
        self.generation.forget_run(run.name)
        self.session.remove(run.name)
        self._row_changed(run.name)
        self._refresh_rows()
        self._runs_changed()

    def _follow_again(self: Any, run: RunState) -> None:
        """A run that trains again is shown and followed (as ``r`` does)."""
        if not run.shown:
            run.shown = True
            self.follower.follow(run.name)
            self._runs_changed()
        self._row_changed(run.name)
        self.follower.look_now()


def _whole_number(text: str) -> str | None:
    """Why ``text`` is not a count of epochs to add, or None."""
    if not text.isdigit() or int(text) < 1:
        return f"Give a whole number of epochs of at least 1, not {text!r}."
    return None
