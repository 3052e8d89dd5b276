"""Shared fixtures: real text in small amounts, the study's NYT data when present, tiny runs."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from engine.config import RunConfig, build_run_config
from engine.corpus import embedded_corpus_path, split_sentences


def pytest_configure(config) -> None:
    """One intra-op thread for the tests' tiny models, here and in subprocesses.

    Two torch threads on two shared cores stall each other badly when the Textual app, a trainer
    thread and pytest compete (a generate test took 40 s instead of 0.4 s).
    """
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


NYT_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "nyt-articles"
TINY_SENTENCES = 240


def nyt_file(name: str) -> Path:
    """A file of the study's NYT data, or a skip saying where it was looked for."""
    path = NYT_DIR / name
    if not path.is_file():
        pytest.skip(f"the study's NYT data is absent ({path} not found); it lives in ../shared/data/nyt-articles/")
    return path


@pytest.fixture
def nyt_dir() -> Path:
    if not NYT_DIR.is_dir():
        pytest.skip(f"the study's NYT data is absent ({NYT_DIR} not found)")
    return NYT_DIR


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """The first sentences of the embedded Lee corpus (real English news) as a small .txt file."""
    documents = embedded_corpus_path().read_text(encoding="utf-8").splitlines()
    sentences = [s for doc in documents for s in split_sentences(doc)][:TINY_SENTENCES]
    path = tmp_path_factory.mktemp("corpus") / "lee-head.txt"
    path.write_text("\n".join(sentences) + "\n", encoding="utf-8")
    return path


def tiny_config(name: str, corpus: Path, **overrides) -> RunConfig:
    """A run small enough to train in about a second on CPU; ``overrides`` use dotted keys."""
    values = {
        "corpus.paths": [str(corpus)],
        "model.embedding_dim": 8,
        "model.hidden_size": 16,
        "train.epochs": 1,
        "train.batch_size": 16,
        "train.device": "cpu",
        "train.log_every": 2,
    }
    values.update({key.replace("__", "."): value for key, value in overrides.items()})
    return build_run_config(name, values.pop("preset", None), values)


# -- engine test fixtures: smaller real text and saved runs shared by the engine and CLI tests ----

SMALL_SENTENCES = 100
SMALL_WORDS = 12


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory) -> Path:
    """The first 100 sentences of the embedded Lee corpus, each cut to its first 12 words.

    Real English (575 words + padding, 1075 pairs, longest 12) that trains in well under a second.
    """
    documents = embedded_corpus_path().read_text(encoding="utf-8").splitlines()
    sentences = [s for doc in documents for s in split_sentences(doc)][:SMALL_SENTENCES]
    path = tmp_path_factory.mktemp("small-corpus") / "lee-short.txt"
    path.write_text("\n".join(" ".join(s.split()[:SMALL_WORDS]) for s in sentences) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def saved_runs(tmp_path_factory, small_corpus) -> Path:
    """A checkpoints folder holding two finished one-epoch runs on ``small_corpus``.

    ``base``: softmax head, cross-entropy, vocabulary capped at 300 (so it has ``<unk>``).
    ``linear``: the study's linear head trained on MSE. Copy the folder before changing it.
    """
    from engine.trainer import Trainer

    checkpoints = tmp_path_factory.mktemp("saved-runs")
    for config in (
        tiny_config("base", small_corpus, corpus__max_vocab=300),
        tiny_config("linear", small_corpus, model__head="linear", objective__loss="mse"),
    ):
        final = list(Trainer.new(config, checkpoints).events())[-1]
        assert type(final).__name__ == "RunFinished", final
    return checkpoints


@pytest.fixture
def runs(saved_runs, tmp_path) -> Path:
    """A private copy of the saved runs, free to damage."""
    copy = tmp_path / "checkpoints"
    shutil.copytree(saved_runs, copy)
    return copy


def record_json(checkpoints: Path, name: str) -> dict:
    """A run's run.json as plain JSON, read without the engine."""
    return json.loads((checkpoints / name / "run.json").read_text())
