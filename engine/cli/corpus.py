"""``lm-explorer corpus-info``: a corpus's counts as the study reports them."""

from __future__ import annotations

import argparse
import json

from pydantic import ValidationError

from engine.cli.common import ArgumentParser
from engine.config.settings import add_options, describe_validation_error
from engine.errors import UserError


def add_parsers(commands: argparse._SubParsersAction[ArgumentParser]) -> None:
    """The ``corpus-info`` subcommand."""
    info = commands.add_parser(
        "corpus-info",
        help="the study's corpus counts",
        description="Documents, vocabulary (+1 padding), pairs and longest document.",
    )
    add_options(info, ["corpus.paths", "corpus.column", "corpus.max_vocab", "corpus.min_count"])
    info.add_argument("--json", action="store_true")


def cmd_corpus_info(args: argparse.Namespace) -> int:
    from engine.config.models import CorpusConfig
    from engine.lm.corpus import load_corpus

    try:
        config = CorpusConfig(
            paths=args.corpus or [], column=args.column, max_vocab=args.max_vocab, min_count=args.min_count or 1
        )
    except ValidationError as error:
        raise UserError(describe_validation_error(error)) from None
    corpus = load_corpus(config)
    stats = corpus.stats
    if args.json:
        print(
            json.dumps(
                {
                    "sources": corpus.sources,
                    "documents": stats.documents,
                    "vocab_size": stats.vocab_size,
                    "pairs": stats.pairs,
                    "longest": stats.longest,
                    "fingerprint": corpus.fingerprint,
                }
            )
        )
        return 0
    print(
        "\n".join(
            [
                f"corpus:        {'; '.join(corpus.sources)}",
                f"documents:     {stats.documents}",
                f"vocabulary:    {stats.vocab_size} (distinct words + 1 for padding, as Keras counts)",
                f"pairs:         {stats.pairs}",
                f"longest:       {stats.longest} words",
            ]
        )
    )
    return 0
