"""The one reader of ``metrics.jsonl`` lines, for the engine, the CLI and the app alike.

A trainer appends one JSON object per line: ``kind`` (``step`` for a training window, ``epoch``
for an epoch end), ``step`` (batches trained), ``epoch`` (fractional) and the metrics, with the
non-finite values written as the strings ``"inf"``, ``"-inf"`` and ``"nan"`` (strict JSON).

The error policy, the same wherever lines are read: a line that is not such an object is
skipped, never fatal. That covers a line cut short by a crash, damaged or mistyped JSON, nesting
too deep to parse, an integer too long to convert (Python refuses more than 4300 digits) or too
large for a float, a line longer than :data:`~engine.runs.protocol.MAX_METRICS_LINE_BYTES`, and a
``step`` outside ``0 ≤ step ≤ MAX_STEP``. Numbers come back as the file has them (an integer as
an int, the non-finite names as the floats ``inf``/``nan``); keys whose values are not numbers are
left out.

A run resumed from an earlier checkpoint (its trainer was killed after writing lines past it) writes
the steps after that checkpoint again: each line supersedes the lines read before it at a later step
and those of its own kind at its step (:func:`supersedes`); :func:`current` keeps the rest, the run's
history as it now stands.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from engine.runs.protocol import MAX_METRICS_LINE_BYTES
from engine.safe_io import open_regular

KINDS = ("step", "epoch")
NON_FINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}
MAX_STEP = 10**12 - 1  # the most a checkpoint's file name (``model-e<epoch>-s<step>``) can hold


def parse_line(text: bytes | str) -> dict[str, Any] | None:
    """One line as ``{"kind": …, "step": int, "epoch": number, <metric>: number, …}``, or None when it is not one."""
    if len(text) > MAX_METRICS_LINE_BYTES:
        return None
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError):  # ValueError: bad JSON, bad UTF-8, an integer of over 4300 digits
        return None
    if not isinstance(raw, dict) or raw.get("kind") not in KINDS:
        return None
    step = raw.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or not 0 <= step <= MAX_STEP:
        return None
    line: dict[str, Any] = {"kind": raw["kind"], "step": step}
    for key, value in raw.items():
        if key in line:
            continue
        number = _number(value)
        if number is not None:
            line[key] = value if isinstance(value, int) else number
        elif isinstance(value, int) and not isinstance(value, bool):
            return None  # an integer too large for a float: not a line lm-explorer wrote
    epoch = line.get("epoch")
    if epoch is None or not 0 <= epoch < math.inf:
        return None
    return line


def _number(value: Any) -> float | None:
    """A metric's value as a float (None for an integer beyond a float's range): a JSON number, or one of the names
    of :data:`NON_FINITE`; else None."""
    if isinstance(value, str):
        return NON_FINITE.get(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value)
    except OverflowError:
        return None


def format_line(line: dict[str, Any]) -> str:
    """``line`` as one strict JSON line, ending in a newline; non-finite floats become ``"inf"``, ``"-inf"`` or ``"nan"``."""
    return json.dumps({key: _name_if_non_finite(value) for key, value in line.items()}, allow_nan=False) + "\n"


def _name_if_non_finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def parse_lines(data: bytes) -> list[dict[str, Any]]:
    """Every metrics line in ``data`` (whole lines, ``\\n``-separated), the others skipped."""
    return [line for line in map(parse_line, data.splitlines()) if line is not None]


def supersedes(line: dict[str, Any], earlier: dict[str, Any]) -> bool:
    """Whether ``line`` replaces ``earlier``, a line written before it: ``earlier`` is at a later step, or at the same step
    and of the same kind (the work it described was lost with its trainer and done again)."""
    return bool(earlier["step"] > line["step"] or (earlier["step"] == line["step"] and earlier["kind"] == line["kind"]))


def current(lines: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """``lines`` in file order without the superseded ones (:func:`supersedes`)."""
    kept: list[dict[str, Any]] = []
    for line in lines:
        while kept and supersedes(line, kept[-1]):
            kept.pop()
        kept.append(line)
    return kept


def read_lines(path: Path, what: str) -> Iterator[dict[str, Any]]:
    """The metrics lines of the regular file ``path`` (``what`` names it in a refusal), streamed.

    A line over the length limit is read past in pieces, never held whole, and skipped.
    :class:`FileNotFoundError` passes through.
    """
    with os.fdopen(open_regular(path, what), "rb") as file:
        while chunk := file.readline(MAX_METRICS_LINE_BYTES + 1):
            if len(chunk) > MAX_METRICS_LINE_BYTES and not chunk.endswith(b"\n"):
                while (rest := file.readline(MAX_METRICS_LINE_BYTES)) and not rest.endswith(b"\n"):
                    pass
                continue
            line = parse_line(chunk.rstrip(b"\r\n"))
            if line is not None:
                yield line


def read_history(path: Path, what: str, epochs_completed: int | None = None) -> list[dict[str, Any]]:
    """The metrics lines of ``path`` (:func:`read_lines`) as the run's history now stands, in step order: without the
    superseded ones (:func:`current`) nor those past ``epochs_completed`` + 1; none when there is no such file."""
    try:
        parsed = read_lines(path, what)
        lines = current(line for line in parsed if epochs_completed is None or line["epoch"] <= epochs_completed + 1)
    except FileNotFoundError:
        return []
    return sorted(lines, key=lambda line: (line["step"], line["kind"] == "epoch"))
