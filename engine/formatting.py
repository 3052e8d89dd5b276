"""Plain-text renderings shared by the front ends: labels, numbers, tables, the collapse flag.

Torch-free, so the Textual app can import it before its first frame.
"""

from __future__ import annotations

import math

from engine.config.models import ObjectiveConfig

COLLAPSE_THRESHOLD = 5


def is_collapsed(distinct_predictions: int) -> bool:
    """A model whose argmax names only a handful of words, whatever the input, has collapsed."""
    return distinct_predictions <= COLLAPSE_THRESHOLD


def objective_label(objective: ObjectiveConfig) -> str:
    """``mse``, ``beta(2)``, ``mse + kl``: base loss with its parameter, then the regularizer."""
    base = objective.loss if objective.loss_param is None else f"{objective.loss}({objective.loss_param:g})"
    return base if objective.regularizer == "none" else f"{base} + {objective.regularizer}"


def number(value: float | int | None) -> str:
    """Four significant digits, scientific where that is shorter; ``–`` for missing."""
    if value is None:
        return "–"
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"


def distinct_label(distinct: int | float | None) -> str:
    """The distinct-predictions count, marked when the model has collapsed onto a handful of words."""
    if distinct is None:
        return "–"
    return f"{int(distinct)} COLLAPSED" if is_collapsed(int(distinct)) else str(int(distinct))


def text_table(headers: list[str], rows: list[list[str]]) -> str:
    """Columns padded to their widest cell, a rule under the header."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)]
    lines = [
        "  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=False)).rstrip() for line in [headers, *rows]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table; pipes inside cells are escaped."""

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(cell).replace("|", "\\|") for cell in cells) + " |"

    return "\n".join([line(headers), "|" + "|".join("---" for _ in headers) + "|", *(line(row) for row in rows)])


def plus_minus(mean: float, sd: float) -> str:
    """``mean ± sd`` in :func:`number`'s digits; the mean alone where there is no sd (one value)."""
    return number(mean) if not math.isfinite(sd) else f"{number(mean)} ± {number(sd)}"
