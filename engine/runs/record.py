"""A run's record, ``run.json``: its model, and its reader (torch-free, so listing runs loads no torch).

Every field is bounded, so a hostile ``run.json`` is refused with one sentence before it can make a
reader allocate or loop; the folder is a trust boundary (:mod:`engine.safe_io`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from engine.config.models import MAX_VOCAB, RUN_NAME_PATTERN, RUN_NAME_RULE, RunConfig
from engine.errors import UserError
from engine.lm.sizes import check_model_fits
from engine.runs import metrics_lines
from engine.runs.metrics_lines import MAX_STEP
from engine.runs.protocol import METRICS_FILE, RECORD_FILE, protocol_file
from engine.safe_io import check_regular_or_absent, is_plain_directory, read_regular

FORMAT_VERSION = 1
Status = Literal["training", "finished", "stopped", "diverged", "failed"]
MAX_RECORD_BYTES = 256 * 2**20
MAX_JSON_DEPTH = 64
MAX_EPOCHS = 10**9 - 1  # as many digits as the tensor file names give the epoch
WEIGHTS_FILE_PATTERN = r"^model-e[0-9]{1,9}-s[0-9]{1,12}\.safetensors$"
OPTIMIZER_FILE_PATTERN = r"^optimizer-e[0-9]{1,9}-s[0-9]{1,12}\.safetensors$"
SAVED_FILES = ("model-", "optimizer-", RECORD_FILE)  # what a save writes: its orphaned temp files are removed


class RunRecord(BaseModel):
    """Everything about a run except its tensors: enough to rebuild, resume and compare it.

    Every field is bounded, so a hostile ``run.json`` is refused before it can make a reader
    allocate or loop; metrics may be infinite or NaN and stay readable.
    """

    model_config = ConfigDict(ser_json_inf_nan="strings")

    format_version: int = FORMAT_VERSION
    name: str = Field(pattern=RUN_NAME_PATTERN.pattern)
    config: RunConfig
    vocab: list[str] = Field(min_length=2, max_length=MAX_VOCAB)
    corpus_fingerprint: str = Field(max_length=128)
    corpus_sources: list[str] = Field(max_length=100_000)
    corpus_stats: dict[str, int]
    prefix_width: int = Field(ge=0, le=1_000_000)
    train_pairs: int = Field(ge=0)
    val_pairs: int = Field(ge=0)
    steps_per_epoch: int = Field(ge=1)
    status: Status = "training"
    epochs_completed: int = Field(default=0, ge=0, le=MAX_EPOCHS)
    step: int = Field(default=0, ge=0, le=MAX_STEP)
    batch_in_epoch: int = Field(default=0, ge=0, le=MAX_STEP)
    partial_epoch: PartialEpoch | None = None
    metrics: dict[str, float] = {}
    message: str | None = None
    weights_file: str | None = Field(default=None, pattern=WEIGHTS_FILE_PATTERN)
    optimizer_file: str | None = Field(default=None, pattern=OPTIMIZER_FILE_PATTERN)
    versions: dict[str, str] = {}
    created: str = ""
    updated: str = ""

    @model_validator(mode="after")
    def _partial_epoch_fits(self) -> RunRecord:
        partial = self.partial_epoch
        if (
            partial is not None
            and partial.count
            and (len(partial.sums) != 5 or any(not 0 <= i < len(self.vocab) for i in partial.predicted))
        ):
            raise ValueError("the saved running totals do not fit the vocabulary")
        return self

    @property
    def epoch_progress(self) -> float:
        """Epochs trained, fractional when stopped mid-epoch."""
        return self.epochs_completed + self.batch_in_epoch / max(self.steps_per_epoch, 1)


class PartialEpoch(BaseModel):
    """An epoch's running totals saved by a mid-epoch stop (see ``engine.objective.metrics.MetricTotals.state``)."""

    model_config = ConfigDict(extra="forbid")

    count: int = Field(ge=0)
    sums: list[float] = Field(default=[], max_length=16)
    predicted: list[int] = Field(default=[], max_length=MAX_VOCAB)


RunRecord.model_rebuild()


def check_run_name(name: str) -> None:
    """Refuse a name that is not a run folder's (it would reach outside the checkpoints folder, or nowhere)."""
    if not RUN_NAME_PATTERN.fullmatch(name):
        raise UserError(
            f"{name!r} is not a run name: a run is a folder directly inside the checkpoints folder, named with "
            f"{RUN_NAME_RULE}; 'lm-explorer runs' lists them."
        )


def check_folder(folder: Path, name: str) -> None:
    """Refuse a run folder that is a link or a file."""
    if not is_plain_directory(folder):
        raise UserError(
            f"Run {name!r} is not a plain folder ({str(folder)!r} is a link or a file); "
            "lm-explorer keeps each run in a real folder inside the checkpoints folder."
        )


def read_run_history(checkpoints: Path, name: str, epochs_completed: int | None = None) -> list[dict[str, Any]]:
    """Run ``name``'s metrics lines as its history now stands (:func:`engine.runs.metrics_lines.read_history`: superseded
    lines dropped, none past ``epochs_completed`` + 1), the name checked first; no torch needed."""
    check_run_name(name)
    path = Path(checkpoints) / name / METRICS_FILE
    return metrics_lines.read_history(path, protocol_file(path), epochs_completed)


def read_record(checkpoints: Path, name: str) -> RunRecord:
    """The validated record of run ``name``; the folder's name is the run's name, whatever the record says."""
    check_run_name(name)
    folder = Path(checkpoints) / name
    what = f"Run {name!r} file {RECORD_FILE!r}"
    if not folder.exists() and not folder.is_symlink():
        raise UserError(f"No run named {name!r} in {str(folder.parent)!r}; 'lm-explorer runs' lists the saved runs.")
    check_folder(folder, name)
    try:
        data = read_regular((folder / RECORD_FILE), what, MAX_RECORD_BYTES)
    except FileNotFoundError:
        raise UserError(f"Run {name!r} has no {RECORD_FILE}; it is not a complete run, remove {str(folder)!r}.") from None
    try:
        raw = json.loads(data.decode("utf-8"))
        _check_depth(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, ValueError) as error:
        raise UserError(
            f"Run {name!r} is corrupt ({RECORD_FILE} is not valid JSON: {error}); remove or restore {str(folder)!r}."
        ) from None
    version = raw.get("format_version") if isinstance(raw, dict) else None
    if version != FORMAT_VERSION:
        raise UserError(
            f"Run {name!r} was saved in checkpoint format {version!r}, but this lm-explorer reads format {FORMAT_VERSION}; "
            "open it with the lm-explorer version that wrote it."
        )
    raw = {**raw, "name": name}
    if isinstance(raw.get("config"), dict):
        raw["config"] = {**raw["config"], "name": name}
    try:
        record = RunRecord.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise UserError(
            f"Run {name!r} is corrupt ({RECORD_FILE} field {where}: {first['msg']}); remove or restore {str(folder)!r}."
        ) from None
    check_model_fits(len(record.vocab), record.config.model, f"Run {name!r}")
    check_regular_or_absent(folder / METRICS_FILE, f"Run {name!r} file {METRICS_FILE!r}")
    return record


JSON_CONTAINERS = frozenset({dict, list})


def _check_depth(value: Any, depth: int = 0) -> None:
    """Refuse JSON nested deeper than any record lm-explorer writes.

    A flat list (the vocabulary: up to millions of words) is passed over by one C-level scan of its
    element types; only containers are descended into (listing 1,000 runs spent a third of its time here).
    """
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    children = list(value.values()) if isinstance(value, dict) else value if isinstance(value, list) else []
    if JSON_CONTAINERS.isdisjoint(map(type, children)):
        return
    for child in children:
        if isinstance(child, (dict, list)):
            _check_depth(child, depth + 1)
