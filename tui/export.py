"""Results a researcher takes away: metrics as CSV, the generation table as Markdown (the plots' figures: :mod:`engine.study.figures`).

Each export is one file in the folder the app was started from (the current directory), named
``lm-explorer-<what>-<date>-<time>.<ext>`` and never overwriting another; the app's toast names
the path. Files are written atomically (temp file + rename). The CSV holds every line of each
shown run's history (its ``metrics.jsonl`` without the lines a resumed run superseded), one row per line with the run's name in front, then the settings
that differ among the runs (the weight of a sweep, a seed), the numbers as the file has them
(non-finite ones as ``inf``, ``-inf``, ``nan``). Each seed group among them adds a row per epoch
all its members finished (run ``group:<label>``, kind ``group``): ``n``, each metric's mean over
the members, and beside it ``<metric>_sd``, their sample standard deviation.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.runs.groups import M, SeedGroup, read_group_epochs
from engine.runs.record import read_run_history
from engine.runs.welch import mean_sd
from engine.safe_io import atomic_write

LEADING_COLUMNS = ("run", "kind", "step", "epoch", "wall_s")  # the run, then where each line sits on every x axis of the plots


def export_folder() -> Path:
    """Where exports go: the current directory."""
    return Path.cwd()


def save_export(what: str, extension: str, data: bytes, folder: Path | None = None) -> Path:
    """Save ``data`` as a fresh file, ``lm-explorer-metrics-20260126-153012.csv`` or with ``-2``, ``-3``… if taken, and
    return its path. The name is claimed by creating it exclusively (two apps exporting in one directory in the same
    second, such as two served tabs, get two names), then filled atomically (:func:`engine.safe_io.atomic_write`):
    a reader sees an empty file or the whole one. A write that fails removes the claimed name."""
    folder = export_folder() if folder is None else folder
    stem = f"lm-explorer-{what}-{datetime.now():%Y%m%d-%H%M%S}"
    path, n = folder / f"{stem}.{extension}", 1
    while True:
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            break
        except FileExistsError:
            n += 1
            path = folder / f"{stem}-{n}.{extension}"
    try:
        atomic_write(path, data)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def varied(settings: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The settings (dotted keys, in their order) whose values are not the same for every run in ``settings``."""
    keys = dict.fromkeys(key for values in settings.values() for key in values)
    return [key for key in keys if len({json.dumps(values.get(key), default=str) for values in settings.values()}) > 1]


def metrics_csv(
    checkpoints: Path,
    run_names: Iterable[str],
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    groups: Iterable[SeedGroup[M]] = (),
) -> str:
    """One CSV row per line of each run's history (:func:`engine.runs.record.read_run_history`, which
    :meth:`~engine.runs.checkpoint.RunDirectory.read_metrics` reads by; a refused metrics file is a
    :class:`~engine.errors.UserError`): run, the settings that differ among the runs (``settings``: run name →
    dotted key → value), kind, step, epoch, wall_s, then every metric (sorted by name); then each group's rows
    (:func:`group_rows`)."""
    settings = settings or {}
    differing = varied(settings)
    rows: list[dict[str, Any]] = [
        {"run": name, **{key: settings[name].get(key) for key in differing}, **line}
        for name in run_names
        for line in read_run_history(checkpoints, name)
    ]
    rows += [row for group in groups for row in group_rows(checkpoints, group)]
    metrics = sorted({key for row in rows for key in row} - set(LEADING_COLUMNS) - set(differing))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["run", *differing, *LEADING_COLUMNS[1:], *metrics], lineterminator="\n")
    writer.writeheader()
    writer.writerows(
        {key: json.dumps(value) if isinstance(value, (dict, list)) else value for key, value in row.items()} for row in rows
    )
    return out.getvalue()


def group_rows(checkpoints: Path, group: SeedGroup[M]) -> list[dict[str, Any]]:
    """A seed group's rows: per epoch every member finished, ``n`` and each metric's mean and ``<metric>_sd``."""
    epochs = read_group_epochs(checkpoints, group.names)
    rows = []
    for epoch in epochs.common_epochs:
        row: dict[str, Any] = {"run": f"group:{group.label}", "kind": "group", "epoch": epoch, "n": group.n}
        metrics = sorted({key for lines in epochs.lines for line in lines for key in line} - {*LEADING_COLUMNS, "n"})
        for metric in metrics:
            values = epochs.at(metric, epoch)
            if values:
                row[metric], row[f"{metric}_sd"] = mean_sd(values)
        rows.append(row)
    return rows
