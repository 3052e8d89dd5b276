"""Plain-text renderings shared by the front ends: an objective's label, text and Markdown tables.

A metric's value renders through its row of :mod:`engine.metric_table`.

Torch-free, so the Textual app can import it before its first frame.
"""

from __future__ import annotations

from engine.config.models import ObjectiveConfig


def objective_label(objective: ObjectiveConfig) -> str:
    """``mse``, ``beta(2)``, ``mse + kl``: base loss with its parameter, then the regularizer."""
    base = objective.loss if objective.loss_param is None else f"{objective.loss}({objective.loss_param:g})"
    return base if objective.regularizer == "none" else f"{base} + {objective.regularizer}"


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
