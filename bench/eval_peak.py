"""The validation pass of a W3 run, alone in a process, so its peak RSS can be read: ``python -m bench.eval_peak W3.txt DEVICE``.

Loads the corpus and model as ``lm-explorer train`` does for W3 (:mod:`bench.workloads`) and runs
:func:`engine.training.trainer.evaluate` over the ``HEAVIEST`` validation batches holding the most scored
positions: the memory a validation batch takes grows with its positions × vocabulary, so these
bound the whole pass's peak.
"""

from __future__ import annotations

import sys

import torch

from bench.workloads import W3_OVERRIDES, Workload
from engine.lm.batching import DocumentBatches
from engine.lm.corpus import split_documents
from engine.lm.model import LanguageModel
from engine.objective.total import Objective
from engine.training.trainer import EVAL_BATCH_FACTOR, evaluate, resolve_device

HEAVIEST = 3


def main(path: str, device_name: str) -> None:
    workload = Workload("W3", [path], dict(W3_OVERRIDES))
    config = workload.config("w3-eval", device_name)
    corpus = workload.corpus()
    device = resolve_device(device_name)
    _, val_docs = split_documents(corpus, config.corpus.val_fraction, config.train.seed)
    size = config.train.batch_size * EVAL_BATCH_FACTOR
    chunks = [val_docs[i : i + size] for i in range(0, len(val_docs), size)]
    chunks.sort(key=lambda chunk: -sum(len(corpus.documents[d]) - 1 for d in chunk))
    batches = DocumentBatches(corpus, [d for chunk in chunks[:HEAVIEST] for d in chunk], size)
    torch.manual_seed(config.train.seed)
    model = LanguageModel(len(corpus.vocab), config.model).to(device)
    evaluate(model, batches, Objective(config.objective), device)


if __name__ == "__main__":
    main(*sys.argv[1:3])
