"""The follower's looks at a real checkpoints folder: busy runs every look, settled ones every ``SETTLED_S`` seconds,
a run folder made or removed at the next look."""

from __future__ import annotations

import json
import shutil

from engine.jobs.controller import Controller
from engine.runs import protocol
from tests.conftest import tiny_config, write_hand_made_run
from tui import follow
from tui.follow import Follower


def statuses(posted: list[follow.Observed]) -> dict[str, str | None]:
    """Each run's status in the looks posted since the list was last emptied, and ``gone`` for a run gone."""
    seen: dict[str, str | None] = {}
    for message in posted:
        seen.update({update.view.name: update.view.status for update in message.updates})
        seen.update(dict.fromkeys(message.gone, "gone"))
    posted.clear()
    return seen


def test_settled_runs_wait_for_their_look_while_busy_new_and_removed_ones_are_seen_at_the_next(
    tiny_corpus, tmp_path, monkeypatch
):
    checkpoints = tmp_path / "checkpoints"
    for name in ("a", "b"):
        write_hand_made_run(checkpoints, name)
    controller = Controller(checkpoints)
    [queued] = controller.queue([tiny_config("q", tiny_corpus)])  # owned by this process: it stays queued
    posted: list[follow.Observed] = []
    follower = Follower(controller, posted.append)
    follower.look()
    assert statuses(posted) == {"a": "finished", "b": "finished", queued: "queued"}

    monkeypatch.setattr(follow, "SETTLED_S", 3600.0)  # no look at every folder falls due from here on
    record = checkpoints / "a" / protocol.RECORD_FILE
    record.write_text(json.dumps({**json.loads(record.read_text()), "status": "stopped"}))
    protocol.request_stop(checkpoints / queued)
    follower.look(everything=False)
    assert statuses(posted) == {queued: "stopped"}  # the busy run at once; the settled one waits for its look

    write_hand_made_run(checkpoints, "c")  # the checkpoints folder changed: this look is at every folder
    follower.look(everything=False)
    assert statuses(posted) == {"a": "stopped", "c": "finished"}

    shutil.rmtree(checkpoints / "b")
    follower.look(everything=False)
    assert statuses(posted) == {"b": "gone"}

    record.write_text(json.dumps({**json.loads(record.read_text()), "status": "finished"}))
    follower.look(everything=False)
    assert statuses(posted) == {}
    monkeypatch.setattr(follow, "SETTLED_S", 0.0)  # its look is due
    follower.look(everything=False)
    assert statuses(posted) == {"a": "finished"}
