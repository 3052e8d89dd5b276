"""Each setting is defined once, on its pydantic field: the CLI, the form's checks and the README come from it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.cli.main import build_parser
from engine.config.settings import markdown_table, setting, settings
from engine.errors import UserError

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_has_help_and_its_own_flag():
    flags = [item.flag for item in settings()]
    assert len(flags) == len(set(flags))
    assert all(item.help for item in settings())
    assert setting("model.num_layers").flag == "--layers" and setting("corpus.paths").flag == "--corpus"


def test_train_offers_every_setting_and_sweep_all_but_the_weight_and_epsilon(capsys):
    flags = {item.flag for item in settings()}
    for command, expected in (("train", flags), ("sweep", flags - {"--weight", "--epsilon"})):
        with pytest.raises(SystemExit):
            build_parser().parse_args([command, "--help"])
        shown = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", capsys.readouterr().out))
        assert expected <= shown and (flags - expected).isdisjoint(shown), command


def test_only_corpus_epochs_and_device_may_change_on_resume():
    assert [item.key for item in settings() if item.resumable] == ["corpus.paths", "train.epochs", "train.device"]


@pytest.mark.parametrize(
    ("key", "text", "value"),
    [
        ("model.num_layers", " 3 ", 3),
        ("train.lr", "1e-3", 1e-3),
        ("objective.weight", "0", 0.0),
        ("train.device", "cuda:1", "cuda:1"),
        ("train.seed", str(2**63 - 1), 2**63 - 1),
        ("corpus.val_fraction", "0.5", 0.5),
    ],
)
def test_a_good_value_converts(key, text, value):
    assert setting(key).convert(text) == value


@pytest.mark.parametrize(
    ("key", "text", "sentence"),
    [
        ("model.num_layers", "9", "--layers must be a whole number from 1 to 8, not '9'."),
        ("model.num_layers", "2.5", "--layers must be a whole number from 1 to 8, not '2.5'."),
        ("train.lr", "0", "--lr must be a finite number > 0, not '0'."),
        ("train.lr", "inf", "--lr must be a finite number > 0, not 'inf'."),
        ("objective.weight", "-1e-7", "--weight must be a finite number ≥ 0, not '-1e-7'."),
        ("corpus.val_fraction", "1", "--val-fraction must be a finite number > 0 and < 1, not '1'."),
        ("train.device", "gpu", "--device must be auto, cpu, cuda or cuda:N, not 'gpu'."),
        ("train.seed", "-1", "--seed must be a whole number from 0 to 9223372036854775807, not '-1'."),
    ],
)
def test_a_bad_value_is_one_sentence_naming_the_flag_and_what_it_takes(key, text, sentence):
    with pytest.raises(UserError) as caught:
        setting(key).convert(text)
    assert str(caught.value) == sentence
    assert setting(key).problem(text) == "must be " + sentence.split(" must be ")[1].rsplit(", not", 1)[0]


def test_the_readme_table_is_the_generated_one():
    text = README.read_text(encoding="utf-8")
    found = re.search(r"<!-- settings-table: .*? -->\n(.*?)\n<!-- end settings-table -->", text, re.S)
    assert found, "README.md lost its settings table markers"
    assert found.group(1) == markdown_table(), (
        "README's settings table is stale: paste `python -m engine.config.settings` into it"
    )
