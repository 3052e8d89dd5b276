"""The real ``lm-explorer`` console script in a real terminal (tmux, 120×40), driven by keys.

Each test uses its own tmux server socket, so a developer's tmux sessions are never touched.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from engine.config.models import CorpusConfig
from engine.lm.corpus import load_corpus
from engine.runs.checkpoint import list_runs, load_run

pytestmark = pytest.mark.skipif(
    shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux; .ci/run installs it)"
)

SEED_TEXT = "the government"
TRAINING = re.compile(r"training\s+\d+ %(?:\s+·\s+cpu)?\s+\d+\.\d\d/(\d+)\s+\d")  # status, device, epoch, a validation loss


def console_script() -> str:
    script = Path(sys.executable).parent / "lm-explorer"
    found = str(script) if script.exists() else shutil.which("lm-explorer")
    if found is None:
        pytest.skip("the lm-explorer console script is not installed; run pip install -e .")
    return found


class Tmux:
    """One detached tmux session on a private server."""

    def __init__(self, command: list[str], name: str) -> None:
        self.socket = f"lmx-test-{os.getpid()}-{name}-{uuid.uuid4().hex[:8]}"  # a fresh server: no race with the last test's
        self.name = name
        self._tmux("new-session", "-d", "-s", name, "-x", "120", "-y", "40", shlex.join(command))

    def _tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        # COLUMNS and LINES (set by pytest's plugins) would override the pane's size inside the app.
        env = {key: value for key, value in os.environ.items() if key not in ("COLUMNS", "LINES")}
        return subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=check, timeout=10, env=env
        )

    def screen(self) -> str:
        result = self._tmux("capture-pane", "-p", "-t", self.name, check=False)
        return result.stdout

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", self.name, *keys)

    def type(self, text: str) -> None:
        self._tmux("send-keys", "-t", self.name, "-l", text)

    def alive(self) -> bool:
        return self._tmux("has-session", "-t", self.name, check=False).returncode == 0

    def pane_pid(self) -> int:
        return int(self._tmux("display-message", "-p", "-t", self.name, "#{pane_pid}").stdout.strip())

    def wait_for(self, found, what: str, timeout: float = 90.0) -> str:
        """Poll the pane until ``found(screen)`` is true; fail with the last screen after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if found(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; the pane showed:\n{screen}")
            time.sleep(0.25)

    def kill(self) -> None:
        self._tmux("kill-server", check=False)


def running(pid: int) -> bool:
    """Whether the process exists and is not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


@pytest.fixture
def open_app(tiny_corpus, tmp_path):
    """Start the real app on the tiny corpus; the fixture value is (tmux, checkpoints folder)."""
    checkpoints = tmp_path / "checkpoints"
    command = [console_script(), "--corpus", str(tiny_corpus), "--checkpoints", str(checkpoints), "--device", "cpu"]
    tmux = Tmux(command, f"app{os.getpid()}")
    try:
        tmux.wait_for(lambda s: "Ready: 1 run" in s, "the corpus to load and the form to be ready")
        yield tmux, checkpoints
    finally:
        tmux.kill()


FIELD_LABEL_WIDTH = 15  # SetupForm's label column


def click_field(tmux: Tmux, label: str) -> None:
    """Focus the form field labelled ``label`` by clicking its input (an SGR mouse press and release)."""
    screen = tmux.screen()
    row, line = next((row, line) for row, line in enumerate(screen.splitlines()) if re.match(rf"\s*{label}\s", line))
    column = line.index(label) + FIELD_LABEL_WIDTH + 2  # inside the input, right of the label column (0-based)
    tmux.type(f"\x1b[<0;{column + 1};{row + 1}M\x1b[<0;{column + 1};{row + 1}m")  # SGR coordinates count from 1


def start_training(tmux: Tmux, epochs: int) -> str:
    """Set Epochs (clicked, then cleared with ctrl+u), train with ctrl+t, wait for the first epoch's progress."""
    click_field(tmux, "Epochs")
    tmux.keys("C-u")
    tmux.type(str(epochs))
    tmux.wait_for(lambda s: re.search(rf"Epochs\s+{epochs}\b", s), "the epochs field to change")
    tmux.keys("C-t")
    return tmux.wait_for(lambda s: (m := TRAINING.search(s)) and m.group(1) == str(epochs), "a training run past its first epoch")


def test_two_tab_keys_in_one_write_end_on_the_second(open_app):
    tmux, _ = open_app
    for keys, shown in (
        (("F4", "F3"), "training loss"),
        (("F3", "F4"), "Seed"),
        (("F4", "F2"), "Epochs"),
        (("F2", "F3"), "training loss"),
    ):
        tmux.keys(*keys)  # one send-keys: one write to the terminal
        tmux.wait_for(lambda s, shown=shown: shown in s, f"{keys[1]}'s tab after {' '.join(keys)}", timeout=10)
        time.sleep(0.5)  # let a late focus message arrive (it used to pull the tabs back to the first key's tab)
        assert shown in tmux.screen(), f"after {' '.join(keys)} the pane showed:\n{tmux.screen()}"


def test_train_generate_and_quit_in_a_real_terminal(open_app, tiny_corpus):
    tmux, checkpoints = open_app
    start_training(tmux, epochs=300)

    tmux.keys("F4")
    tmux.type(SEED_TEXT)
    tmux.keys("Enter")
    vocabulary = set(load_corpus(CorpusConfig(paths=[str(tiny_corpus)])).vocab)

    def generated(screen: str) -> bool:
        row = next((line for line in screen.splitlines() if line.strip().startswith(SEED_TEXT)), "")
        cell = re.sub(r"^\s*ep [\d.]+ · ", "", row.strip()[len(SEED_TEXT) :])  # the weights' epoch in front
        words = cell.split()
        return len(words) >= 3 and all(word in vocabulary for word in words[:-1])  # the last may be cut at the edge

    tmux.wait_for(generated, "generated words in the generation table")

    tmux.keys("C-q")
    tmux.wait_for(lambda s: "train on without the app" in s, "the quit confirmation")
    tmux.keys("y")
    deadline = time.monotonic() + 60
    while tmux.alive():
        assert time.monotonic() < deadline, f"the app did not exit after quitting:\n{tmux.screen()}"
        time.sleep(0.25)
    (listing,) = list_runs(checkpoints)
    assert load_run(checkpoints, listing.name).record.status == "stopped"


def app_pid(tmux: Tmux) -> int:
    """The app's process: the pane's own, or the one its shell started."""
    pid = tmux.pane_pid()
    if "lm-explorer" not in Path(f"/proc/{pid}/cmdline").read_text():
        (pid,) = (int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split())
    return pid


def test_form_seeds_shown_runs_and_a_renamed_runs_number_survive_a_sigkill(tiny_corpus, tmp_path):
    """The app's memory is saved as it changes: killed outright (no exit handler runs), the next launch has it all."""
    from tests.conftest import write_hand_made_run
    from tui.memory import MEMORY_FILE

    checkpoints = tmp_path / "checkpoints"
    write_hand_made_run(checkpoints, "alpha")  # run 1; forgetting it would number the renamed run 2
    command = [console_script(), "--corpus", str(tiny_corpus), "--checkpoints", str(checkpoints), "--device", "cpu"]
    tmux = Tmux(command, f"crash{os.getpid()}")
    try:
        tmux.wait_for(lambda s: "Ready: 1 run" in s and re.search(r"○\s+1\s+alpha\b", s), "the form and the saved run")
        click_field(tmux, "Epochs")
        tmux.keys("C-u")
        tmux.type("7")
        tmux.keys("F5", "Home", "Space", "n")  # alpha (run 1) shown, then renamed
        tmux.wait_for(lambda s: "alpha" in s and "name" in s.lower() and "escape" in s.lower(), "the rename question")
        tmux.keys("C-u")
        tmux.type("alpha-best")
        tmux.keys("Enter")
        tmux.wait_for(lambda s: re.search(r"●\s+1\s+alpha-best\b", s), "the renamed run, shown")
        tmux.keys("F4")
        tmux.wait_for(lambda s: "Enter pins it" in s, "the Generate tab")
        tmux.type(SEED_TEXT)
        tmux.keys("Enter")

        def saved() -> dict:
            try:
                return json.loads((checkpoints / MEMORY_FILE).read_text())
            except (OSError, ValueError):
                return {}

        tmux.wait_for(
            lambda _: (memory := saved()).get("seeds") == [SEED_TEXT] and memory.get("shown") == ["alpha-best"],
            "the memory file to hold the seed and the renamed, shown run",
        )
        memory = saved()
        assert memory["form"]["epochs"] == "7" and memory["numbers"]["alpha-best"] == 1 and "alpha" not in memory["numbers"]
        os.kill(app_pid(tmux), signal.SIGKILL)
        tmux.wait_for(lambda _: not tmux.alive(), "the killed app's pane to close", timeout=30)
    finally:
        tmux.kill()
    again = Tmux(command, f"again{os.getpid()}")
    try:
        screen = again.wait_for(lambda s: re.search(r"●\s+1\s+alpha-best\b", s), "alpha-best shown as run 1")
        assert re.search(r"Epochs\s+7\b", screen), screen
        again.keys("F4")
        again.wait_for(lambda s: SEED_TEXT in s, "the pinned seed")
    finally:
        again.kill()


def test_seed_groups_in_a_real_terminal(tiny_corpus, tmp_path):
    """Two hand-made 3-seed groups: their rows in the runs list, their band lines on the Plots tab, their comparison."""
    from tests.conftest import hand_made_metrics, write_hand_made_run

    checkpoints = tmp_path / "checkpoints"
    for seed in range(3):
        for weight, start in ((10.0, 7.0), (1.0, 6.0)):
            write_hand_made_run(
                checkpoints,
                f"g-w{weight:g}-s{seed}",
                metrics=hand_made_metrics(3, start=start + 0.1 * seed),
                objective__regularizer="kl",
                objective__weight=weight,
                train__seed=seed,
            )
    command = [console_script(), "--corpus", str(tiny_corpus), "--checkpoints", str(checkpoints), "--device", "cpu"]
    tmux = Tmux(command, f"groups{os.getpid()}")
    try:
        tmux.wait_for(lambda s: "g-w10 · 3 seeds" in s and "g-w1 · 3 seeds" in s, "the two group rows")
        tmux.wait_for(lambda s: "5.85 ± 0.1" in s, "the kl-10 group's mean ± sd validation loss")
        for words, shown, hidden in (("w10-s", "g-w10", "g-w1"), ("w1-s", "g-w1", "g-w10")):
            tmux.keys("F5", "/")  # the filter leaves one group in the list, its row first: space shows its members
            tmux.wait_for(lambda s: "filter: words" in s, "the filter line")
            tmux.type(words)
            # a row reads "▸○ 3  NAME · 3 seeds"; the legend's "#1,2,3 NAME · 3 seeds, min–max" stays whatever the filter
            tmux.wait_for(
                lambda s, a=shown, b=hidden: f"3  {a} · 3 seeds" in s and f"3  {b} · 3 seeds" not in s, f"{shown} alone"
            )
            tmux.keys("Enter")
            tmux.wait_for(lambda s: "␣ Show" in s, "the runs list's keys")
            tmux.keys("Space")
            tmux.wait_for(lambda s, a=shown: f"▸● 3  {a} · 3 seeds" in s, f"{shown}'s members shown")
            tmux.keys("/", "Escape")
            tmux.wait_for(lambda s: "g-w10 · 3 seeds" in s and "g-w1 · 3 seeds" in s, "the filter cleared")
        tmux.keys("F3")
        screen = tmux.wait_for(lambda s: s.count("3 seeds, min–max") == 2, "two group lines in the legend")
        assert "·····" in screen  # a shaded band
        tmux.keys("F5", "/")
        tmux.wait_for(lambda s: "filter: words" in s, "the filter line")
        tmux.type("w1-s")
        tmux.wait_for(lambda s: "3  g-w10 · 3 seeds" not in s, "the kl-1 group alone in the list")
        tmux.keys("Enter")
        tmux.wait_for(lambda s: "␣ Show" in s, "the runs list's keys")
        tmux.keys("i")
        screen = tmux.wait_for(lambda s: "g-w1 is lower than g-w10" in s, "the comparison in the run details")
        assert "n = 3 + 3" in screen and "95 % CI" in screen
    finally:
        tmux.kill()
