"""Run management in the app (more epochs, rename, delete) and run numbers that stay the same from launch to launch.

Real run folders (hand-made ones, and one trained for real), real controller launches, Pilot keys.
"""

from __future__ import annotations

import json

import pytest
from textual.widgets import Input, Static

from engine.runs.checkpoint import load_run
from engine.training.trainer import Trainer
from tests.conftest import HAND_MADE_TIME, settle, tiny_config, wait_for, write_hand_made_run
from tests.tui.test_app import make_app, pin_seed, show_runs, wait_for_exit
from tui.follow import Observed, Update
from tui.memory import MEMORY_FILE
from tui.screens.ask import AskText, ConfirmDelete

pytestmark = pytest.mark.asyncio


def collect_toasts(app) -> list[str]:
    toasts: list[str] = []
    app.notify = lambda message, **kwargs: toasts.append(message)  # type: ignore[method-assign]
    return toasts


async def highlight(pilot, name: str) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: name in app.runs_table.rows, f"{name} in the runs list")
    await pilot.press("f5")
    app.runs_table.move_cursor(row=app.runs_table.get_row_index(name))
    await pilot.pause()


async def answer(pilot, text: str) -> None:
    """Replace the modal's text (it starts selected) and press enter."""
    field = pilot.app.screen.query_one("#answer", Input)
    field.value = ""
    await pilot.press(*text, "enter")


async def look_again(pilot, stale) -> None:
    """A look at the folder taken before the app renamed or deleted a run, handled after; then a fresh look."""
    app = pilot.app
    app.post_message(Observed([Update(stale)], []))
    app.follower.look()
    await settle(pilot)


def set_created(checkpoints, name: str, created: str) -> None:
    path = checkpoints / name / "run.json"
    record = json.loads(path.read_text())
    record["created"] = created
    path.write_text(json.dumps(record))


async def test_rename_keeps_number_color_shown_state_and_generations(tiny_corpus, tmp_path, stub_generation):
    checkpoints = tmp_path / "checkpoints"
    for name in ("a", "b"):
        write_hand_made_run(checkpoints, name)
    app = make_app(tiny_corpus, checkpoints)
    async with app.run_test(size=(120, 36)) as pilot:
        await show_runs(pilot, "a")
        await pin_seed(pilot, "the government")
        before = app.session.get("a")
        number, color, cell = before.number, before.color, app.generation.results[("the government", "a")]
        stale = app.controller.runs.view("a")  # what a look just before the rename saw

        await highlight(pilot, "a")
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, AskText), "the name question")
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, AskText), "the question to close")
        assert (checkpoints / "a").is_dir() and app.session.get("a") is before
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, AskText), "the name question")
        await answer(pilot, "b")  # taken
        problem = str(app.screen.query_one("#problem", Static).render())
        assert "'b' already exists" in problem and isinstance(app.screen, AskText)
        await answer(pilot, "../up")
        assert "not a plain folder name" in str(app.screen.query_one("#problem", Static).render())
        toasts = collect_toasts(app)
        await answer(pilot, "kl-best")
        await wait_for(pilot, lambda: not isinstance(app.screen, AskText), "the question to close")

        assert toasts == ["Renamed run 'a' to 'kl-best'."]
        assert not (checkpoints / "a").exists() and load_run(checkpoints, "kl-best").record.name == "kl-best"
        run = app.session.get("kl-best")
        assert app.session.get("a") is None and run is before and (run.number, run.color, run.shown) == (number, color, True)
        assert "a" not in app.runs_table.rows and app.runs_table.highlighted_run == "kl-best"
        assert [column.name for column in app.generation.columns] == ["kl-best"]
        assert app.generation.results[("the government", "kl-best")] == cell  # not generated again
        await wait_for(pilot, lambda: bool(app.session.get("kl-best").series), "the history under the new name")
        await look_again(pilot, stale)
        assert sorted(app.session.runs) == ["b", "kl-best"]
        await pilot.press("ctrl+q")
        await wait_for_exit(app)
    memory = json.loads((checkpoints / MEMORY_FILE).read_text())
    assert memory["shown"] == ["kl-best"] and memory["numbers"]["kl-best"] == number and "a" not in memory["numbers"]


async def test_delete_asks_then_removes_the_folder_and_the_row(tiny_corpus, tmp_path):
    checkpoints = tmp_path / "checkpoints"
    for name in ("a", "b"):
        write_hand_made_run(checkpoints, name)
    (checkpoints / "b" / "notes.txt").write_text("mine")
    app = make_app(tiny_corpus, checkpoints)
    async with app.run_test(size=(120, 36)) as pilot:
        await show_runs(pilot, "a")
        toasts = collect_toasts(app)
        await highlight(pilot, "b")
        await pilot.press("d")  # a file lm-explorer did not write: refused before asking
        assert (
            "notes.txt" in toasts[-1] and not isinstance(app.screen, ConfirmDelete) and (checkpoints / "b" / "notes.txt").exists()
        )

        await highlight(pilot, "a")
        stale = app.controller.runs.view("a")
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDelete), "the confirmation")
        await pilot.press("n")
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmDelete), "the confirmation to close")
        assert (checkpoints / "a").is_dir() and app.session.get("a") is not None

        app.generation.results[("the", "a")] = ((1, "10", None), ["cell"])  # a continuation the app generated for 'a'
        app.generation.epochs[("the", "a")] = 1.0
        await pilot.press("delete")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDelete), "the confirmation")
        await pilot.press("y")
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmDelete), "the confirmation to close")
        assert toasts[-1].startswith("Deleted run 'a': 3 files (") and not (checkpoints / "a").exists()
        assert app.session.get("a") is None and "a" not in app.runs_table.rows and app.session.shown == []
        assert app.plots.session.get("a") is None and app.generation.columns == []
        assert ("the", "a") not in app.generation.results and ("the", "a") not in app.generation.epochs  # a new 'a' starts afresh
        await look_again(pilot, stale)
        assert sorted(app.session.runs) == ["b"]


async def test_more_epochs_trains_a_finished_run_on_and_training_refuses_rename_and_delete(tiny_corpus, tmp_path):
    checkpoints = tmp_path / "checkpoints"
    final = list(Trainer.new(tiny_config("done", tiny_corpus, train__epochs=1), checkpoints).events())[-1]
    assert type(final).__name__ == "RunFinished"
    app = make_app(tiny_corpus, checkpoints)
    async with app.run_test(size=(120, 36)) as pilot:
        await highlight(pilot, "done")
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, AskText), "the epochs question")
        assert "--epochs TOTAL" in str(app.screen.query_one("#prompt", Static).render())
        await answer(pilot, "0")
        assert "at least 1" in str(app.screen.query_one("#problem", Static).render())
        toasts = collect_toasts(app)
        await answer(pilot, "400")  # far more than the test waits for
        await wait_for(pilot, lambda: not isinstance(app.screen, AskText), "the question to close")
        assert toasts[-1].startswith("Run 'done' trains on to epoch 401 on cpu")
        await wait_for(
            pilot, lambda: app.run_status("done") == "training" and app.session.get("done").epoch > 1, "done to train on"
        )
        assert app.session.get("done").shown and app.session.get("done").config.train.epochs == 401

        for key in ("n", "d"):
            await pilot.press(key)
            assert "training" in toasts[-1] and not isinstance(app.screen, (AskText, ConfirmDelete)), key
        assert (checkpoints / "done").is_dir()

        await pilot.press("x")
        await wait_for(pilot, lambda: app.run_status("done") == "stopped", "done to stop")
    record = load_run(checkpoints, "done").record
    assert record.config.train.epochs == 401 and record.epochs_completed >= 1 and record.step > 0


async def test_run_numbers_are_the_same_in_every_launch_and_new_runs_count_on(tiny_corpus, tmp_path):
    checkpoints = tmp_path / "checkpoints"
    made = {"zeta": "2026-01-01T00:00:00.000+00:00", "alpha": "2026-01-02T00:00:00.000+00:00", "mid": HAND_MADE_TIME}
    for name, created in made.items():  # in age: zeta, alpha, mid; by name and by last update, another order
        write_hand_made_run(checkpoints, name)
        set_created(checkpoints, name, created)

    def numbers(app) -> dict[str, int]:
        return {name: run.number for name, run in app.session.runs.items()}

    first = make_app(tiny_corpus, checkpoints)
    async with first.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: len(first.session.runs) == 3, "the saved runs")
        assert numbers(first) == {"zeta": 1, "alpha": 2, "mid": 3}
        await highlight(pilot, "alpha")
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(first.screen, ConfirmDelete), "the confirmation")
        await pilot.press("y")
        await wait_for(pilot, lambda: first.session.get("alpha") is None, "alpha to be deleted")
        await pilot.press("ctrl+q")
        await wait_for_exit(first)

    write_hand_made_run(checkpoints, "newer")  # made between the launches (as by 'lm-explorer train' in another shell)
    set_created(checkpoints, "newer", "2026-02-01T00:00:00.000+00:00")
    second = make_app(tiny_corpus, checkpoints)
    async with second.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: len(second.session.runs) == 3, "the saved runs")
        assert numbers(second) == {"zeta": 1, "mid": 3, "newer": 4}  # 2 was alpha's: not given again
        second.start_runs([tiny_config("fresh", tiny_corpus)])
        assert second.session.get("fresh").number == 5
        await wait_for(pilot, lambda: not second.session.get("fresh").alive, "fresh to finish")
        await pilot.press("ctrl+q")
        await wait_for_exit(second)

    (checkpoints / MEMORY_FILE).unlink()  # no memory: numbers count the runs in the order they were made
    third = make_app(tiny_corpus, checkpoints)
    async with third.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: len(third.session.runs) == 4, "the saved runs")
        assert numbers(third) == {"zeta": 1, "mid": 2, "newer": 3, "fresh": 4}


async def test_help_and_palette_list_the_management_keys(tiny_corpus, tmp_path):
    from tui.commands import commands

    app = make_app(tiny_corpus, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        runs_keys = dict(next(rows for title, rows in app.help_sections() if title.startswith("Runs list")))
        assert {key: runs_keys[key] for key in ("e", "n", "d / delete")} == {
            "e": "More epochs",
            "n": "Rename",
            "d / delete": "Delete",
        }, runs_keys
        titles = [title for title, _, _ in commands(app)]
        assert {"More epochs", "Rename run", "Delete run"} <= set(titles)
