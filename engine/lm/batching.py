"""Turn a corpus split into batches of (inputs, next-word targets), built per batch on request.

Two ways to present the same (prefix → next word) pairs:

- ``document``: each document runs through the LSTM once, post-padded to the batch's longest,
  and every position is scored (padding masked). No prefix is recomputed.
- ``prefix``: the study's pre-padded n-grams. Each pair is its own row, its prefix left-padded
  with 0 to the corpus's longest document minus one, and only the last position is scored.

Neither ever builds a (pairs × vocabulary) matrix; the trainer makes one-hot targets per batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
import numpy.typing as npt
import torch

from engine.lm.corpus import Corpus, all_pairs

EVAL_BATCH_SIZE = 256
_BUCKET_BATCHES = 50

Members: TypeAlias = Sequence[int] | npt.NDArray[np.int64]
"""One batch's rows: indices of documents (document batching) or of (document, position) pairs (prefix batching)."""


@dataclass
class Batch:
    """``inputs`` (B, T) token ids; ``targets`` the next word for each scored position.

    ``last_only``: score only the last position (prefix batching, targets (B,)); else every
    position where ``targets`` (B, T) is not padding. ``pads``: prefix batching's count of
    leading columns that are padding in every row (known here, so the model need not read the
    tokens back from the device).
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    last_only: bool
    pads: int | None = None

    def to(self, device: torch.device) -> Batch:
        inputs, targets = self.inputs.to(device, non_blocking=True), self.targets.to(device, non_blocking=True)
        return Batch(inputs, targets, self.last_only, self.pads)


class DocumentBatches:
    """Whole documents, shuffled per epoch into length buckets so little padding is computed."""

    last_only = False

    def __init__(self, corpus: Corpus, doc_indices: list[int], batch_size: int):
        self.docs = [corpus.documents[i] for i in doc_indices]
        self.batch_size = batch_size

    @property
    def pairs(self) -> int:
        return sum(len(doc) - 1 for doc in self.docs)

    def __len__(self) -> int:
        return -(-len(self.docs) // self.batch_size)

    def epoch(self, seed: int | None) -> list[list[int]]:
        """The batches' document indices: in corpus order without a seed, else shuffled reproducibly.

        Shuffled documents are sorted by length within chunks of 50 batches, cut into batches,
        and the batches shuffled again.
        """
        order = np.arange(len(self.docs))
        if seed is None:
            return [order[i : i + self.batch_size].tolist() for i in range(0, len(order), self.batch_size)]
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(self.docs))
        chunk = self.batch_size * _BUCKET_BATCHES
        batches: list[list[int]] = []
        for start in range(0, len(order), chunk):
            part = sorted(order[start : start + chunk].tolist(), key=lambda i: len(self.docs[i]))
            batches.extend(part[i : i + self.batch_size] for i in range(0, len(part), self.batch_size))
        return [batches[i] for i in rng.permutation(len(batches))]

    def build(self, members: Members) -> Batch:
        docs = [self.docs[i] for i in members]
        width = max(len(doc) for doc in docs) - 1
        inputs = torch.zeros(len(docs), width, dtype=torch.long)
        targets = torch.zeros(len(docs), width, dtype=torch.long)
        for row, doc in enumerate(docs):
            tokens = torch.tensor(doc, dtype=torch.long)
            inputs[row, : len(doc) - 1] = tokens[:-1]
            targets[row, : len(doc) - 1] = tokens[1:]
        return Batch(inputs, targets, last_only=False)


class PrefixBatches:
    """The study's n-gram rows: ``[0, …, 0, w_1, …, w_k] → w_(k+1)``, pre-padded to a fixed width."""

    last_only = True

    def __init__(self, corpus: Corpus, pairs: npt.NDArray[np.int64], batch_size: int, width: int):
        self.corpus = corpus
        self.pair_rows = pairs
        self.batch_size = batch_size
        self.width = width

    @classmethod
    def from_documents(cls, corpus: Corpus, doc_indices: list[int], batch_size: int, width: int) -> PrefixBatches:
        return cls(corpus, all_pairs(corpus, doc_indices), batch_size, width)

    @property
    def pairs(self) -> int:
        return len(self.pair_rows)

    def __len__(self) -> int:
        return -(-len(self.pair_rows) // self.batch_size)

    def epoch(self, seed: int | None) -> list[npt.NDArray[np.int64]]:
        order = np.arange(len(self.pair_rows)) if seed is None else np.random.default_rng(seed).permutation(len(self.pair_rows))
        return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]

    def build(self, members: Members) -> Batch:
        rows = self.pair_rows[members]
        inputs = torch.zeros(len(rows), self.width, dtype=torch.long)
        targets = torch.empty(len(rows), dtype=torch.long)
        for row, (doc_index, position) in enumerate(rows):
            doc = self.corpus.documents[doc_index]
            inputs[row, self.width - position :] = torch.tensor(doc[:position], dtype=torch.long)
            targets[row] = doc[position]
        return Batch(inputs, targets, last_only=True, pads=self.width - int(rows[:, 1].max()))


def iterate(batches: DocumentBatches | PrefixBatches, seed: int | None, skip: int = 0) -> Iterator[Batch]:
    """An epoch's batches (``seed`` None: in order, for evaluation), skipping the first ``skip``."""
    for members in batches.epoch(seed)[skip:]:
        yield batches.build(members)
