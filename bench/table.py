"""The result table: one :class:`Row` per (workload, measure), printed as aligned text or Markdown."""

from __future__ import annotations

from dataclasses import dataclass

from engine import formatting

HEADERS = ["workload", "measure", "value", "baseline", "ratio", "target", "met"]


@dataclass
class Row:
    """One measured value beside its baseline.

    ``ratio`` is defined per measure so that its target reads naturally (a speed-up, a fraction
    of a throughput, …); ``met`` is None when the row has no target or was skipped.
    """

    workload: str
    measure: str
    value: str
    baseline: str = "–"
    ratio: float | None = None
    target: str = "–"
    met: bool | None = None

    def cells(self) -> list[str]:
        ratio = "–" if self.ratio is None else f"{self.ratio:.3g}×"
        met = "–" if self.met is None else ("yes" if self.met else "no")
        return [self.workload, self.measure, self.value, self.baseline, ratio, self.target, met]


def skipped(workload: str, measure: str, reason: str) -> Row:
    """A row that was not measured, saying why."""
    return Row(workload, measure, f"skipped: {reason}")


def text_table(rows: list[Row]) -> str:
    """Columns padded to their widest cell, a rule under the header (:func:`engine.formatting.text_table`)."""
    return formatting.text_table(HEADERS, [row.cells() for row in rows])


def markdown_table(rows: list[Row]) -> str:
    """The same table in GitHub-flavoured Markdown (:func:`engine.formatting.markdown_table`)."""
    return formatting.markdown_table(HEADERS, [row.cells() for row in rows])


def seconds(value: float) -> str:
    """A duration with a unit that keeps three significant digits."""
    if value < 1.0:
        return f"{value * 1000:.3g} ms"
    return f"{value:.3g} s"


def mib(value_bytes: float) -> str:
    return f"{value_bytes / 2**20:.0f} MiB"
