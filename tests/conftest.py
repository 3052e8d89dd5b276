"""Shared fixtures: real text in small amounts, the study's NYT data when present, tiny runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import RunConfig, build_run_config
from engine.corpus import embedded_corpus_path, split_sentences

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
