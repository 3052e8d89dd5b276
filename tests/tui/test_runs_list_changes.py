"""The runs list while a filter or a sort is active: rows added, renamed, deleted and hidden from every side.

Each path once ended the app with ``RowDoesNotExist`` (issue 18): a rename in the app to a name
the filter leaves out, a run deleted or renamed from another shell, a headless run appearing.
Real run folders, the real follower, Pilot keys.
"""

from __future__ import annotations

import shutil

import pytest

from engine.runs.manage import rename_run
from tests.conftest import settle, wait_for, write_hand_made_run
from tests.tui.test_app import make_app
from tests.tui.test_manage import answer, highlight
from tui.screens.ask import AskText

pytestmark = pytest.mark.asyncio


async def filter_and_sort(pilot, text: str) -> None:
    """Type ``text`` into the runs filter, go back to the list, and sort it by a column (by run, objective, weight, then status)."""
    app = pilot.app
    await pilot.press("f5", "slash", *text, "enter")
    await pilot.press("o", "o", "o", "o")
    await settle(pilot)
    assert app.runs_table.filter_text == text and app.runs_table.sort_column == "status"


def listed(app) -> list[str]:
    return sorted(app.runs_table.listed)


async def test_rename_in_the_app_to_a_name_the_filter_leaves_out(tiny_corpus, tmp_path):
    checkpoints = tmp_path / "checkpoints"
    for name in ("ent-1e-7", "ent-2", "kl-point1"):
        write_hand_made_run(checkpoints, name)
    app = make_app(tiny_corpus, checkpoints)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: len(app.runs_table.runs) == 3, "the three runs")
        await highlight(pilot, "ent-1e-7")
        await filter_and_sort(pilot, "ent")
        assert listed(app) == ["ent-1e-7", "ent-2"]
        app.runs_table.move_cursor(row=app.runs_table.get_row_index("ent-1e-7"))
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, AskText), "the name question")
        await answer(pilot, "renamed")
        await wait_for(pilot, lambda: not isinstance(app.screen, AskText), "the question to close")
        await settle(pilot)
        assert app.is_running and (checkpoints / "renamed").is_dir()
        assert listed(app) == ["ent-2"] and app.session.get("renamed") is not None
        await pilot.press("escape")  # the list's filter line is closed: the key goes to the list, nothing happens
        app.runs_table.set_filter("")
        await settle(pilot)
        assert listed(app) == ["ent-2", "kl-point1", "renamed"]


async def test_changes_from_another_shell_while_filtered_and_sorted(tiny_corpus, tmp_path):
    checkpoints = tmp_path / "checkpoints"
    for name in ("ent-a", "ent-b", "kl-c"):
        write_hand_made_run(checkpoints, name)
    app = make_app(tiny_corpus, checkpoints)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: len(app.runs_table.runs) == 3, "the three runs")
        await highlight(pilot, "ent-b")
        await filter_and_sort(pilot, "ent")

        shutil.rmtree(checkpoints / "ent-b")  # the highlighted row, deleted from another shell
        await wait_for(pilot, lambda: "ent-b" not in app.runs_table.runs, "the deleted run to leave")
        assert listed(app) == ["ent-a"]

        rename_run(checkpoints, "ent-a", "other-a")  # renamed from the CLI to a name the filter leaves out
        await wait_for(pilot, lambda: "other-a" in app.runs_table.runs, "the renamed run")
        assert listed(app) == []

        write_hand_made_run(checkpoints, "ent-new")  # a headless run appears, matching
        write_hand_made_run(checkpoints, "kl-new")  # and one the filter leaves out
        await wait_for(pilot, lambda: {"ent-new", "kl-new"} <= set(app.runs_table.runs), "the new runs")
        assert listed(app) == ["ent-new"]

        rename_run(checkpoints, "kl-new", "ent-renamed")  # renamed into the filter
        await wait_for(pilot, lambda: "ent-renamed" in app.runs_table.rows, "the run renamed into the filter")
        await settle(pilot)
        assert listed(app) == ["ent-new", "ent-renamed"] and app.is_running


async def test_hiding_and_a_status_change_under_a_status_filter(tiny_corpus, tmp_path):
    checkpoints = tmp_path / "checkpoints"
    write_hand_made_run(checkpoints, "done")
    write_hand_made_run(checkpoints, "halted", status="stopped")
    app = make_app(tiny_corpus, checkpoints)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: len(app.runs_table.runs) == 2, "both runs")
        await highlight(pilot, "halted")
        await filter_and_sort(pilot, "stopped")
        assert listed(app) == ["halted"]
        await pilot.press("space", "space")  # shown, hidden: the row is redrawn in place
        await settle(pilot)
        record = checkpoints / "halted" / "run.json"
        record.write_text(record.read_text().replace('"status": "stopped"', '"status": "finished"'))
        await wait_for(pilot, lambda: app.runs_table.runs["halted"].status == "finished", "the new status")
        await wait_for(pilot, lambda: listed(app) == [], "the row the filter now leaves out to go")
        assert app.is_running
        await pilot.press("space", "n", "d", "i")  # keys on an empty list say so; nothing ends the app
        await settle(pilot)
        assert app.is_running


async def test_a_finished_run_renamed_from_the_cli_keeps_its_best_validation_loss(tiny_corpus, tmp_path):
    """A hidden run's history is not kept, and a run renamed from another shell comes back hidden under its new name:
    its best validation loss used to read ``–``."""
    checkpoints = tmp_path / "checkpoints"
    write_hand_made_run(checkpoints, "done")  # validation losses 6.75, 6.25, 5.75
    app = make_app(tiny_corpus, checkpoints)
    async with app.run_test(size=(120, 36)) as pilot:
        table = app.runs_table
        await wait_for(pilot, lambda: "done" in table.rows, "the run")
        await settle(pilot)
        assert not app.session.get("done").shown and str(table.get_cell("done", "best_val_loss")) == "5.75"
        rename_run(checkpoints, "done", "done-renamed")
        await wait_for(pilot, lambda: "done-renamed" in table.rows, "the renamed run")
        await settle(pilot)
        assert str(table.get_cell("done-renamed", "best_val_loss")) == "5.75"
        assert not app.session.get("done-renamed").series  # still hidden: no history kept, only the summary
