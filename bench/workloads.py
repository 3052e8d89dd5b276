"""The three workloads every measure draws from, and where their data lives.

- **W1**, the study's: ``ArticlesApril2017.csv``, the ``paper`` preset, loss ``mse``, regularizer
  ``kl``, weight 10 (4806 pairs, vocabulary 2422).
- **W2**: all nine NYT ``Articles*.csv`` files (the folder), same model (51770 pairs, vocabulary 11265).
- **W3**, scale: the embedded Lee corpus cut into sentences (as :mod:`engine.lm.corpus` does) and
  repeated into a temporary ``.txt`` until it holds at least 1 million tokens; the paper model
  with ``corpus.max_vocab`` 20000 and hidden size 256. Its documents are sentences of up to 73
  words, so it uses the default document split and batching (the pair split needs prefix
  batching, which would pad every pair to 72 positions).

A workload whose data is absent is skipped by every measure, with the reason it gives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config.models import RunConfig
from engine.config.presets import build_run_config
from engine.lm.corpus import Corpus, clean, embedded_corpus_path, load_corpus, split_sentences

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO / ".." / "shared" / "data" / "nyt-articles"
W1_FILE = "ArticlesApril2017.csv"
W3_MIN_TOKENS = 1_000_000
STUDY_OBJECTIVE = {"objective.loss": "mse", "objective.regularizer": "kl", "objective.weight": 10.0}
DOCUMENT_BATCHING = {"corpus.split": "document", "train.batching": "document"}
W3_OVERRIDES = {**STUDY_OBJECTIVE, **DOCUMENT_BATCHING, "corpus.max_vocab": 20000, "model.hidden_size": 256}


@dataclass
class Workload:
    """A corpus and the run configuration every measure starts from (``preset`` + ``overrides``)."""

    key: str
    paths: list[str]
    overrides: dict[str, Any]
    missing: str | None = None
    preset: str = "paper"
    _corpus: Corpus | None = field(default=None, repr=False)

    @property
    def available(self) -> bool:
        return self.missing is None

    def config(self, name: str, device: str, extra: dict[str, Any] | None = None) -> RunConfig:
        """The workload's run as a :class:`RunConfig`; ``extra`` overrides dotted keys such as ``train.epochs``."""
        overrides = {"corpus.paths": self.paths, "train.device": device, **self.overrides, **(extra or {})}
        return build_run_config(name, self.preset, overrides)

    def corpus(self) -> Corpus:
        """The cleaned corpus, loaded once (vocabulary settings do not vary between measures)."""
        if self._corpus is None:
            self._corpus = load_corpus(self.config("corpus", "cpu").corpus)
        return self._corpus


def build_workloads(data_dir: Path, scratch: Path) -> dict[str, Workload]:
    """W1, W2 from ``data_dir`` (skipped when absent), W3 written under ``scratch``."""
    w1_file = data_dir / W1_FILE
    nine = sorted(data_dir.glob("Articles*.csv")) if data_dir.is_dir() else []
    return {
        "W1": Workload("W1", [str(w1_file)], dict(STUDY_OBJECTIVE), None if w1_file.is_file() else f"{w1_file} not found"),
        "W2": Workload(
            "W2",
            [str(data_dir)],
            dict(STUDY_OBJECTIVE),
            None if len(nine) == 9 else f"{data_dir} holds {len(nine)} of the 9 Articles*.csv files",
        ),
        "W3": Workload("W3", [str(write_scale_corpus(scratch / "w3.txt"))], dict(W3_OVERRIDES)),
    }


def write_scale_corpus(path: Path, min_tokens: int = W3_MIN_TOKENS) -> Path:
    """The embedded corpus's sentences, one a line, repeated until they hold ``min_tokens`` tokens."""
    sentences = [
        " ".join(sentence.split())
        for line in embedded_corpus_path().read_text(encoding="utf-8").splitlines()
        for sentence in split_sentences(line)
    ]
    tokens = sum(len(clean(sentence)) for sentence in sentences)
    repeats = math.ceil(min_tokens / tokens)
    path.write_text("\n".join(sentences * repeats) + "\n", encoding="utf-8")
    return path


def token_count(corpus: Corpus) -> int:
    return sum(len(doc) for doc in corpus.documents)


def document_run(epochs: int, batching: str = "document") -> dict[str, Any]:
    """Overrides for a run on the document split with ``batching``, for ``epochs`` epochs."""
    return {**DOCUMENT_BATCHING, "train.batching": batching, "train.epochs": epochs}
