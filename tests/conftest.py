"""Shared fixtures: real text in small amounts, the study's NYT data when present, tiny runs."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from engine.config.models import RunConfig
from engine.config.presets import build_run_config
from engine.lm.corpus import embedded_corpus_path, split_sentences


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
    from engine.training.trainer import Trainer

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


# -- TUI fixtures: hand-made runs whose every number is written here, never trained ----------

HAND_MADE_TIME = "2026-01-02T03:04:05.000+00:00"
HAND_MADE_VOCAB = ["<pad>", "the", "government", "said", "new", "york", "of", "a", "to", "in", "and", "on"]


def hand_made_metrics(epochs: int, windows: int = 4, start: float = 7.0, drop: float = 0.5) -> list[dict]:
    """``metrics.jsonl`` lines with round numbers: ``windows`` step lines per epoch, then an epoch line.

    The training loss falls by ``drop`` per epoch from ``start`` (by ``drop / windows`` per window),
    entropy sits 0.5 below it, KL is a tenth of it; validation loss is 0.25 above the training loss.
    Each step takes 5 s (``wall_s`` = 5 × step plus 2.5 s of validation per epoch so far) at 12,800
    pairs/s; an epoch line's throughput, validation included, is 10,240 pairs/s.
    """
    lines, step = [], 0
    for epoch in range(epochs):
        for window in range(1, windows + 1):
            step += 2
            loss = round(start - drop * (epoch + window / windows), 4)
            lines.append(
                {
                    "kind": "step",
                    "step": step,
                    "epoch": epoch + window / windows,
                    "train_loss": loss,
                    "train_entropy": loss - 0.5,
                    "train_kl": round(loss / 10, 4),
                    "train_accuracy": 0.05 * (epoch + 1),
                    "train_perplexity": 100.0,
                    "train_distinct_predictions": 10,
                    "wall_s": 5.0 * step + 2.5 * epoch,
                    "pairs_per_s": 12800.0,
                }
            )
        loss = round(start - drop * (epoch + 1), 4)
        lines.append(
            {
                "kind": "epoch",
                "step": step,
                "epoch": epoch + 1,
                "train_loss": loss,
                "train_entropy": loss - 0.5,
                "train_kl": round(loss / 10, 4),
                "train_accuracy": 0.05 * (epoch + 1),
                "train_perplexity": 100.0,
                "train_distinct_predictions": 10,
                "entropy": loss - 0.25,
                "kl": round(loss / 10 + 0.1, 4),
                "accuracy": 0.05 * (epoch + 1),
                "perplexity": 100.0,
                "distinct_predictions": 9,
                "val_loss": loss + 0.25,
                "wall_s": 5.0 * step + 2.5 * (epoch + 1),
                "pairs_per_s": 10240.0,
            }
        )
    return lines


def write_hand_made_run(
    checkpoints: Path, name: str, epochs: int = 3, status: str = "finished", metrics: list[dict] | None = None, **overrides
) -> Path:
    """A finished run folder written by hand: ``run.json``, ``metrics.jsonl`` and untrained weights.

    The weights only make the folder loadable; nothing a screen shows depends on them (tests stub
    generation). ``overrides`` are config settings with dotted or ``__`` keys.
    """
    from engine.lm.model import LanguageModel
    from engine.runs.checkpoint import RunDirectory
    from engine.runs.record import RunRecord

    values = {
        "corpus.paths": ["lee-head.txt"],
        "model.embedding_dim": 8,
        "model.hidden_size": 16,
        "train.epochs": epochs,
        "train.batch_size": 16,
        "train.device": "cpu",
        "train.log_every": 2,
    }
    values.update({key.replace("__", "."): value for key, value in overrides.items()})
    config = build_run_config(name, values.pop("preset", None), values)
    lines = hand_made_metrics(epochs) if metrics is None else metrics
    last_epoch = next((line for line in reversed(lines) if line["kind"] == "epoch"), {})
    record = RunRecord(
        name=name,
        config=config,
        vocab=HAND_MADE_VOCAB,
        corpus_fingerprint="0" * 16,
        corpus_sources=["lee-head.txt"],
        corpus_stats={"documents": 20, "pairs": 80},
        prefix_width=6,
        train_pairs=64,
        val_pairs=16,
        steps_per_epoch=8,
        status=status,
        epochs_completed=int(last_epoch.get("epoch", 0)),
        step=lines[-1]["step"] if lines else 0,
        metrics={k: float(v) for k, v in last_epoch.items() if k not in ("kind", "step", "epoch", "wall_s", "pairs_per_s")},
        versions={"lm-explorer": "test", "torch": "test"},
    )
    directory = RunDirectory(checkpoints, name)
    torch.manual_seed(0)
    directory.save(record, LanguageModel(len(HAND_MADE_VOCAB), config.model), None)
    saved = json.loads(directory.record_path.read_text())
    saved["created"] = saved["updated"] = HAND_MADE_TIME  # screens that show them stay the same from run to run
    directory.record_path.write_text(json.dumps(saved, indent=2))
    directory.metrics_path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return directory.path


def stub_continuation(run, seed_text: str, words: int, strategy=None):
    """A stand-in for ``engine.generate.generate``: fixed words and round probabilities, from the seed alone."""
    from engine.generate import Alternative, Continuation, GenerationStep

    vocab = HAND_MADE_VOCAB[1:]
    steps = [
        GenerationStep(
            vocab[i % len(vocab)],
            0.5,
            2.0 + i / 10,
            [Alternative(vocab[(i + 1) % len(vocab)], 0.25), Alternative(vocab[(i + 2) % len(vocab)], 0.125)],
        )
        for i in range(words)
    ]
    known = set(HAND_MADE_VOCAB)
    unknown = [word for word in seed_text.split() if word not in known]  # each occurrence, as the engine lists them
    return Continuation(
        seed_text, run.record.name, "greedy" if strategy is None or strategy.top_k is None else "top-k", unknown, steps
    )


@pytest.fixture
def stub_generation(monkeypatch):
    """Generation returns :func:`stub_continuation`, so a screen's words do not depend on torch."""
    import engine.generate

    monkeypatch.setattr(engine.generate, "generate", stub_continuation)


async def wait_for(pilot, condition, what, timeout: float = 60.0) -> None:
    """Let a Pilot-driven app run until ``condition()`` holds; fail naming ``what`` (a string, or a function giving one
    when it fails) after ``timeout`` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what() if callable(what) else what}")
        await pilot.pause(0.05)


async def settle(pilot, rounds: int = 5) -> None:
    """Let the app process what is queued, and what that queues, ``rounds`` times (no sleeping)."""
    for _ in range(rounds):
        await pilot.pause()
