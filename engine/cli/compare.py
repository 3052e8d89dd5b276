"""``lm-explorer compare A B``: two seed groups (each named by its label or any member's name), whether they differ.

Per validation metric at the groups' last common epoch: the means ± sd, the difference, its 95 %
Welch interval with its df, n per side, and one plain sentence (:mod:`engine.runs.compare`).
"""

from __future__ import annotations

import argparse
import json
import math

from engine.cli.common import DEFAULT_CHECKPOINTS, ArgumentParser, checkpoints_folder
from engine.errors import UserError


def add_parsers(commands: argparse._SubParsersAction[ArgumentParser]) -> None:
    """The ``compare`` subcommand."""
    compare = commands.add_parser(
        "compare",
        help="whether two seed groups differ (difference of means, 95 %% interval, n)",
        description="Compare two seed groups (runs that differ only in their seed) at their last common epoch; "
        "name each by its group label or any of its runs.",
    )
    compare.add_argument("a", metavar="A")
    compare.add_argument("b", metavar="B")
    compare.add_argument("--checkpoints", default=DEFAULT_CHECKPOINTS, metavar="DIR")
    compare.add_argument("--json", action="store_true", help="print one JSON object")


def cmd_compare(args: argparse.Namespace) -> int:
    from engine.formatting import text_table
    from engine.runs.compare import TABLE_HEADERS, compare_seed_groups
    from engine.runs.groups import find_group
    from engine.runs.view import RunReader

    checkpoints = checkpoints_folder(args.checkpoints, create=False)
    views = RunReader(checkpoints).views()
    a, b = (find_group(views, text, checkpoints) for text in (args.a, args.b))
    if a.names == b.names:
        raise UserError(f"{args.a!r} and {args.b!r} are the same seed group ({a.label}); give two different groups.")
    comparison = compare_seed_groups(checkpoints, a, b)
    if args.json:
        rows = [
            {
                "metric": row.metric,
                "epoch": row.epoch,
                **{key: _finite_or_null(value) for key, value in row.difference.__dict__.items()},
                "sentence": row.sentence(a.label, b.label),
            }
            for row in comparison.rows
        ]
        print(
            json.dumps(
                {
                    "a": {"label": a.label, "runs": a.names},
                    "b": {"label": b.label, "runs": b.names},
                    "epoch": comparison.epoch,
                    "metrics": rows,
                    "sentences": comparison.sentences(),
                },
                allow_nan=False,
            )
        )
        return 0
    print(f"A: {a.label} (n = {a.n}: {', '.join(a.names)})")
    print(f"B: {b.label} (n = {b.n}: {', '.join(b.names)})")
    if comparison.rows:
        print(text_table(TABLE_HEADERS, [row.cells() for row in comparison.rows]))
    print("\n".join(comparison.sentences()))
    return 0


def _finite_or_null(value: object) -> object:
    """A number JSON can hold: NaN and infinities (no interval, too few seeds) become null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value
