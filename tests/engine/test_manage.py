"""``lm-explorer delete`` and ``rename`` (engine.runs.manage), and the controller's train_further refusals: real run folders."""

from __future__ import annotations

import io
import os

import pytest

from engine.errors import UserError
from engine.jobs.controller import Controller
from engine.runs import protocol
from engine.runs.checkpoint import load_run
from tests.conftest import tiny_config, write_hand_made_run
from tests.engine.test_cli import run_cli


@pytest.fixture
def checkpoints(tmp_path):
    folder = tmp_path / "checkpoints"
    for name in ("a", "b"):
        write_hand_made_run(folder, name)
    return folder


def error_line(err: str) -> str:
    """The one sentence a refusal prints (and nothing else: no traceback)."""
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err


def test_rename_moves_the_folder_and_the_run_keeps_everything(checkpoints, capsys):
    before = load_run(checkpoints, "a")
    code, out, err = run_cli(capsys, "rename", "a", "kl-best", "--checkpoints", checkpoints)
    assert (code, out, err) == (0, "Renamed run 'a' to 'kl-best'.\n", "")
    assert not (checkpoints / "a").exists() and not (checkpoints / "kl-best" / "lock").exists()
    after = load_run(checkpoints, "kl-best")
    assert after.name == "kl-best" and after.record.config.name == "kl-best"
    assert after.metrics == before.metrics and after.record.created == before.record.created


@pytest.mark.parametrize(
    ("new", "sentence"),
    [
        ("b", "A run (or file) named 'b' already exists"),
        ("../up", "New run name '../up' is not a plain folder name"),
        (".hidden", "New run name '.hidden' is not a plain folder name"),
        ("a", "Run 'a' already has that name"),
    ],
)
def test_rename_refuses_taken_and_unplain_names(checkpoints, capsys, new, sentence):
    code, out, err = run_cli(capsys, "rename", "a", new, "--checkpoints", checkpoints)
    assert code == 2 and out == "" and sentence in error_line(err)
    assert (checkpoints / "a" / "run.json").is_file() and sorted(os.listdir(checkpoints)) == ["a", "b"]


def test_delete_asks_for_yes_then_removes_only_the_run(checkpoints, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO())  # not a terminal: no one to ask
    code, out, err = run_cli(capsys, "delete", "a", "--checkpoints", checkpoints)
    assert code == 2 and "give --yes" in error_line(err) and "3 files" in err and (checkpoints / "a").is_dir()

    code, out, err = run_cli(capsys, "delete", "a", "--yes", "--checkpoints", checkpoints)
    assert code == 0 and err == "" and out.startswith("Deleted run 'a': 3 files (") and f"{str(checkpoints / 'a')!r}" in out
    assert sorted(os.listdir(checkpoints)) == ["b"] and load_run(checkpoints, "b").name == "b"

    code, out, err = run_cli(capsys, "delete", "a", "--yes", "--checkpoints", checkpoints)
    assert code == 2 and "No run named 'a'" in error_line(err)


def test_delete_follows_no_link(checkpoints, tmp_path, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me")
    (checkpoints / "linked").symlink_to(outside, target_is_directory=True)
    code, _, err = run_cli(capsys, "delete", "linked", "--yes", "--checkpoints", checkpoints)
    assert code == 2 and "is a symbolic link" in error_line(err) and (outside / "precious.txt").read_text() == "keep me"

    (checkpoints / "a" / "stop").symlink_to(outside / "precious.txt")  # a link inside a run: removed, never followed
    code, out, err = run_cli(capsys, "delete", "a", "--yes", "--checkpoints", checkpoints)
    assert code == 0 and out.startswith("Deleted run 'a': 4 files")
    assert not os.path.lexists(checkpoints / "a") and (outside / "precious.txt").read_text() == "keep me"

    code, _, err = run_cli(capsys, "delete", "../outside", "--yes", "--checkpoints", checkpoints)
    assert code == 2 and "not a plain folder name" in error_line(err) and outside.is_dir()


def test_delete_refuses_a_folder_holding_what_lm_explorer_did_not_write(checkpoints, capsys):
    (checkpoints / "a" / "notes.txt").write_text("mine")
    (checkpoints / "b" / "plots").mkdir()
    for name, what in (
        ("a", "a file lm-explorer did not write ('notes.txt')"),
        ("b", "a folder lm-explorer did not write ('plots')"),
    ):
        before = sorted(os.listdir(checkpoints / name))
        code, _, err = run_cli(capsys, "delete", name, "--yes", "--checkpoints", checkpoints)
        assert code == 2 and what in error_line(err)
        assert sorted(os.listdir(checkpoints / name)) == before  # nothing removed


@pytest.mark.parametrize("command", ["delete", "rename"])
def test_a_run_folder_swapped_for_a_link_after_the_checks_leads_nowhere_outside(checkpoints, tmp_path, monkeypatch, command):
    """A hostile writer to the checkpoints folder replaces the run folder by a link between the checks and the change."""
    from engine.runs import manage

    outside = tmp_path / "outside"
    write_hand_made_run(outside, "victim")
    before = sorted(os.listdir(outside / "victim"))
    checked = manage.run_folder

    def then_swapped(*args, **kwargs):
        folder = checked(*args, **kwargs)
        folder.rename(folder.with_name("moved-away"))
        folder.symlink_to(outside / "victim")
        return folder

    monkeypatch.setattr(manage, "run_folder", then_swapped)
    with pytest.raises(UserError, match="cannot be opened"):
        manage.delete_run(checkpoints, "a") if command == "delete" else manage.rename_run(checkpoints, "a", "c")
    assert sorted(os.listdir(outside / "victim")) == before and (checkpoints / "moved-away" / "run.json").is_file()


def test_a_folder_a_killed_first_save_left_can_be_deleted_not_renamed(checkpoints, capsys):
    """Tensors written, the record never: 'runs' does not list it, 'train --name' says the name is taken."""
    leftover = checkpoints / "half"
    leftover.mkdir()
    (leftover / "model-e0-s0.safetensors").write_bytes(b"x" * 10)
    (leftover / "metrics.jsonl").write_text("")
    code, _, err = run_cli(capsys, "rename", "half", "whole", "--checkpoints", checkpoints)
    assert code == 2 and "holds no run" in error_line(err)
    code, out, err = run_cli(capsys, "delete", "half", "--yes", "--checkpoints", checkpoints)
    assert (code, err) == (0, "") and "Deleted run 'half': 2 files" in out and not leftover.exists()
    (checkpoints / "empty").mkdir()
    code, _, err = run_cli(capsys, "delete", "empty", "--yes", "--checkpoints", checkpoints)
    assert code == 2 and "holds no run" in error_line(err) and (checkpoints / "empty").is_dir()


def test_a_training_run_is_neither_deleted_nor_renamed(checkpoints, capsys):
    lock = protocol.RunLock(checkpoints / "a", "a")  # the writer's lock, as a trainer holds it
    lock.acquire()
    try:
        for args in (("delete", "a", "--yes"), ("rename", "a", "c")):
            code, _, err = run_cli(capsys, *args, "--checkpoints", checkpoints)
            assert code == 2 and f"Run 'a' is training (pid {os.getpid()} on" in error_line(err) and "stop it first" in err, args
    finally:
        lock.release()
    assert sorted(os.listdir(checkpoints)) == ["a", "b"] and load_run(checkpoints, "a").name == "a"


def test_a_trainer_starting_meanwhile_is_refused_by_the_lock(checkpoints):
    """Deleting holds the run's writer lock: a trainer that tries to take it then is told who holds it."""
    from engine.runs import manage

    folder = checkpoints / "a"
    with manage._held(folder, "a"), pytest.raises(UserError, match="Run 'a' is being renamed or deleted by process"):
        protocol.RunLock(folder, "a").acquire()
    assert not (folder / "lock").exists()


def test_a_rename_or_delete_holding_the_lock_is_not_training(checkpoints):
    """While a rename or a delete holds a run's lock, every reader still sees how the run ended, never "training"
    (an app watching the folder would otherwise announce it finishing again)."""
    from engine.runs import manage
    from engine.runs.view import RunReader

    saved = RunReader(checkpoints).view("a").status
    with manage._held(checkpoints / "a", "a"):
        view = RunReader(checkpoints).view("a")
        assert (view.status, view.alive, view.pid) == (saved, False, None) and saved != "training"
    lock = protocol.RunLock(checkpoints / "a", "a")  # a trainer's hold is training
    lock.acquire()
    try:
        assert RunReader(checkpoints).view("a").status == "training"
        os.truncate(checkpoints / "a" / "lock", 0)  # as in the instant a holder has the lock and writes its name
        assert RunReader(checkpoints).view("a").status == "training"
    finally:
        lock.release()


def test_train_further_refuses_what_it_cannot_train(checkpoints, tmp_path):
    controller = Controller(checkpoints)
    for more, sentence in ((0, "from 1 to 99997"), (99_998, "from 1 to 99997")):
        with pytest.raises(UserError, match=sentence):
            controller.train_further("a", more, "cpu")
    lock = protocol.RunLock(checkpoints / "a", "a")
    lock.acquire()
    try:
        with pytest.raises(UserError, match="Run 'a' is training; stop it first"):
            controller.train_further("a", 1, "cpu")
    finally:
        lock.release()
    with pytest.raises(UserError, match="No run named 'nope'"):
        controller.train_further("nope", 1, "cpu")
    assert not (checkpoints / "a" / protocol.REQUEST_FILE).exists()  # nothing was queued


@pytest.mark.parametrize("command", ["delete", "rename"])
def test_help_of_delete_and_rename(command, capsys):
    from engine.cli.main import main

    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0 and capsys.readouterr().out.startswith(f"usage: lm-explorer {command} ")


def test_recalled_numbers_never_give_two_runs_one_number_and_rename_keeps_the_place(tiny_corpus):
    """The app's run numbers (tui.session): what a damaged memory or a rename must not break."""
    from tui.session import Session

    session = Session()
    session.recall_numbers({"a": 2, "b": 2, "gone": 7}, next_number=3)  # a damaged memory: a and b both say 2
    config = tiny_config("x", tiny_corpus)
    numbers = [session.add(name, config).number for name in ("a", "b", "new")]
    assert numbers == [2, 8, 9]  # b gets the next free number, after every number remembered (7 included)
    session.rename("a", "a2")
    assert list(session.runs) == ["a2", "b", "new"] and session.get("a2").number == 2 and session.numbers["a2"] == 2
    assert session.get("a2").config.name == "a2" and "a" not in session.numbers
    session.remove("b")
    assert session.add("later", config).number == 10
