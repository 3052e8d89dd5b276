"""The lm-explorer console script's dispatch: headless commands without Textual, the app otherwise."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

import pytest

from tui.launcher import main


def run_python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return result.stdout.strip()


def test_console_script_is_the_launcher():
    (script,) = [entry for entry in entry_points(group="console_scripts") if entry.name == "lm-explorer"]
    assert script.value == "tui.launcher:main"


def test_headless_commands_run_the_cli_without_textual(tmp_path):
    out = run_python(
        "import sys\n"
        "from tui.launcher import main\n"
        f"code = main(['runs', '--checkpoints', {str(tmp_path)!r}])\n"
        "print(code, 'textual' in sys.modules)\n"
    )
    assert out.splitlines() == [f"no runs in {tmp_path}", "0 False"]


def test_the_app_module_imports_neither_torch_nor_numpy():
    """The first frame must not wait for torch: engine modules that need it load in workers."""
    assert run_python("import sys, tui.app\nprint(sorted(m for m in ('torch', 'numpy') if m in sys.modules))") == "[]"


def test_help_says_no_command_opens_the_app(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "train" in out and "generate" in out
    assert "With no command (or 'tui'), lm-explorer opens the terminal app" in " ".join(out.split())


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["--device", "gpu"], "train.device"),
        (["tui", "--corpus", "/no/such/corpus.txt"], "/no/such/corpus.txt"),
        (["--bogus"], "--bogus"),
        (["--checkpoints", "{file}"], "is not a folder"),
        (["--checkpoints", "/proc/nope"], "cannot be made"),
        (["--checkpoints", "{file}/below"], "cannot be made"),
    ],
)
def test_bad_app_options_are_one_sentence_and_exit_2(argv, names, capsys, tmp_path):
    file = tmp_path / "a-file"
    file.write_text("x")
    assert main([arg.format(file=file) for arg in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert names in err


def test_a_cuda_device_without_cuda_is_refused_at_launch(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the refusal is for machines without it")
    assert main(["--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Device 'cuda' was asked for but this machine has no CUDA GPU" in err


@pytest.mark.parametrize(
    ("word", "said"),
    [
        ("trian", "lm-explorer has no command 'trian'; did you mean 'train'? the commands are train, sweep,"),
        ("serv", "did you mean 'serve'?"),
        ("xyzzy", "lm-explorer has no command 'xyzzy'; the commands are "),
    ],
)
def test_an_unknown_command_names_the_nearest_and_all_commands(word, said, capsys):
    assert main([word]) == 2
    err = capsys.readouterr().err
    assert said in err and "corpus-info" in err and "tui, serve" in err and len(err.splitlines()) == 1


def test_a_listing_whose_reader_goes_ends_quietly(tmp_path):
    """``lm-explorer runs | head -1``: the reader leaves after one line; no BrokenPipeError traceback, exit 141."""
    for index in range(1000):  # unreadable runs, a line of 200 characters each: more than a pipe buffer holds
        (tmp_path / f"run-{index}").mkdir()
        (tmp_path / f"run-{index}" / "run.json").write_text("{}")
    listing = subprocess.Popen(
        [sys.executable, "-m", "tui.launcher", "runs", "--checkpoints", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    listing.stdout.readline()
    listing.stdout.close()
    err = listing.stderr.read()
    assert listing.wait(timeout=120) == 141, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err
