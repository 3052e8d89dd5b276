"""``lm-explorer generate``: saved runs continue seed texts, greedy or sampled, as a table or JSON."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from engine.cli.common import DEFAULT_CHECKPOINTS, ArgumentParser, checkpoints_folder, number_option

if TYPE_CHECKING:
    from engine.generate import Continuation


def add_parsers(commands: argparse._SubParsersAction[ArgumentParser]) -> None:
    """The ``generate`` subcommand."""
    generate = commands.add_parser(
        "generate", help="continue seed texts with saved runs", description="Continue seed texts with one or more saved runs."
    )
    generate.add_argument("runs", nargs="+", metavar="RUN")
    generate.add_argument("--text", action="append", required=True, metavar="SEED", help="a seed text (repeat for several)")
    generate.add_argument(
        "--words", type=number_option(int, "--words"), default=10, metavar="N", help="words to add (default 10)"
    )
    generate.add_argument(
        "--top-k",
        type=number_option(int, "--top-k"),
        metavar="K",
        help="sample among the K best instead of greedy (5: the study's sampler)",
    )
    generate.add_argument("--temperature", type=number_option(float, "--temperature"), default=1.0, metavar="T")
    generate.add_argument("--seed", type=number_option(int, "--seed"), default=0, metavar="S", help="sampling seed")
    generate.add_argument("--details", action="store_true", help="also print each step's entropy and top-3 alternatives")
    generate.add_argument("--device", default="cpu", metavar="D")
    generate.add_argument("--checkpoints", default=DEFAULT_CHECKPOINTS, metavar="DIR")
    generate.add_argument("--json", action="store_true")


def cmd_generate(args: argparse.Namespace) -> int:
    from engine.formatting import markdown_table
    from engine.generate import Strategy, generate
    from engine.runs.checkpoint import load_run
    from engine.training.trainer import resolve_device

    strategy = Strategy(top_k=args.top_k, temperature=args.temperature, seed=args.seed)
    device = resolve_device(args.device)
    checkpoints = checkpoints_folder(args.checkpoints, create=False)
    runs = [load_run(checkpoints, name, device, with_metrics=False) for name in args.runs]
    table = {(seed, run.name): generate(run, seed, args.words, strategy) for seed in args.text for run in runs}
    if args.json:
        print(
            json.dumps(
                {
                    "strategy": strategy.name,
                    "words": args.words,
                    "continuations": [
                        {
                            "seed": seed,
                            "run": name,
                            "text": c.text,
                            "unknown_words": c.unknown_words,
                            "entropy_definition": c.entropy_definition,
                            "steps": [
                                {
                                    "word": s.word,
                                    "probability": s.probability,
                                    "entropy": s.entropy,
                                    "alternatives": [{"word": a.word, "probability": a.probability} for a in s.alternatives],
                                }
                                for s in c.steps
                            ],
                        }
                        for (seed, name), c in table.items()
                    ],
                }
            )
        )
        return 0
    print(f"{strategy.name}, {args.words} words")
    rows = [[seed, *(_cell(table[(seed, run.name)]) for run in runs)] for seed in args.text]
    print(markdown_table(["seed", *(run.name for run in runs)], rows))
    if args.details:
        for (seed, name), continuation in table.items():
            print(f"\n{name} — {seed!r} (entropy: {continuation.entropy_definition})")
            for step in continuation.steps:
                alternatives = ", ".join(f"{a.word} {a.probability:.3f}" for a in step.alternatives)
                print(f"  {step.word:<16} p={step.probability:.3f}  entropy {step.entropy:.4g}  top: {alternatives}")
    return 0


def _cell(continuation: Continuation) -> str:
    unknown = f"[unknown: {', '.join(continuation.unknown_words)}] " if continuation.unknown_words else ""
    return unknown + continuation.text
