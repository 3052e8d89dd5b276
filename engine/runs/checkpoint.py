"""Runs on disk: ``<checkpoints>/<run>/`` holds weights, optimizer state, ``run.json`` and ``metrics.jsonl``.

- Weights and optimizer state are safetensors files named by the step they were saved at.
- ``run.json`` (a validated :class:`RunRecord`) names the current weights file: replacing it is
  the commit point of a save. New tensors are written first (temp file + rename), then
  ``run.json`` (temp file + rename), then the old tensors are removed, so a crash at any moment
  leaves a run whose ``run.json`` names complete files.
- ``metrics.jsonl`` gets one JSON line per live window and per epoch as training goes.
  Non-finite values are written as the strings ``"inf"``, ``"-inf"`` and ``"nan"`` (strict JSON),
  in ``run.json`` as ``"Infinity"``/``"NaN"``, and read back as floats.

Loading never unpickles anything; it checks the format version and rebuilds the model from
``run.json`` alone. A run folder is a trust boundary (:mod:`engine.safe_io`): its files are
opened without following links and must be regular files, the tensor file names in ``run.json``
must be the plain names this module writes, and sizes are checked before anything is allocated.
The folder a run is opened from is its identity: a copied folder is its own run.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

import engine
from engine.errors import UserError
from engine.lm.model import LanguageModel
from engine.lm.sizes import state_count
from engine.runs import metrics_lines
from engine.runs.protocol import METRICS_FILE, RECORD_FILE
from engine.runs.record import RunRecord, Status, check_folder, check_run_name, read_record, read_run_history
from engine.safe_io import (
    append_text,
    atomic_write,
    describe_os_error,
    is_plain_directory,
    read_regular,
    remove_orphan_temps,
)

SAVED_FILES = ("model-", "optimizer-", RECORD_FILE)  # what a save writes: its orphaned temp files are removed


def versions() -> dict[str, str]:
    return {
        "lm-explorer": engine.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class RunDirectory:
    """One run's folder and its files, confined to that folder (module docstring)."""

    def __init__(self, checkpoints: Path, name: str):
        check_run_name(name)
        self.path = Path(checkpoints) / name
        self.name = name

    @property
    def record_path(self) -> Path:
        return self.path / RECORD_FILE

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    def exists(self) -> bool:
        return is_plain_directory(self.path) and self.record_path.is_file() and not self.record_path.is_symlink()

    def _file(self, name: str) -> str:
        return f"Run {self.name!r} file {name!r}"

    def save(self, record: RunRecord, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None) -> None:
        """Commit weights (+ optimizer state) and the record, atomically as a set (module docstring).

        The tensor files of the save before stay one save longer, so a reader that has just read
        the previous ``run.json`` still finds the files it names. Temporary files an interrupted
        save left behind are removed. A save the disk refuses (full, read-only, no permission)
        is a :class:`UserError`; the previous checkpoint stays as it was, and a first save that
        fails leaves no folder behind.
        """
        first = not os.path.lexists(self.record_path)
        written: list[str] = []
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._check_folder()
            remove_orphan_temps(self.path, SAVED_FILES)
            keep = {record.weights_file, record.optimizer_file}
            tag = f"e{record.epochs_completed}-s{record.step}"
            weights_file = f"model-{tag}.safetensors"
            atomic_write(self.path / weights_file, save_tensors(_contiguous(model.state_dict())))
            written.append(weights_file)
            optimizer_file = record.optimizer_file
            if optimizer is not None:
                optimizer_file = f"optimizer-{tag}.safetensors"
                tensors, layout = _flatten_optimizer(optimizer)
                atomic_write(self.path / optimizer_file, save_tensors(tensors, metadata={"param_groups": json.dumps(layout)}))
                written.append(optimizer_file)
            record.weights_file, record.optimizer_file = weights_file, optimizer_file
            self._commit_record(record)
        except OSError as error:
            if first:  # nothing names these files: a run that never saved leaves nothing behind
                for name in written:
                    (self.path / name).unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    self.path.rmdir()  # only when empty: a writer's lock keeps it, and the writer removes it when done
            raise self._save_refused(error, first) from None
        keep |= {record.weights_file, record.optimizer_file}
        for stale in self.path.glob("*.safetensors"):
            if stale.name not in keep:
                stale.unlink(missing_ok=True)

    def _save_refused(self, error: OSError, first: bool = False) -> UserError:
        kept = "nothing was saved" if first else "the previous checkpoint is kept"
        return UserError(
            f"Run {self.name!r} could not be saved in {str(self.path)!r}: {describe_os_error(error)}; "
            f"free some space or fix the folder's permissions ({kept})."
        )

    def _check_folder(self) -> None:
        check_folder(self.path, self.name)

    def write_record(self, record: RunRecord) -> None:
        """Replace ``run.json`` (a disk that refuses is a :class:`UserError`)."""
        try:
            self._commit_record(record)
        except OSError as error:
            raise self._save_refused(error) from None

    def mark(self, status: Status, message: str) -> None:
        """Set the saved record's status and message; its weights stay those of the last save.

        A run with no readable record is left as it is (a damaged run is reported, never rewritten).
        """
        if not self.exists():
            return
        try:
            saved = self.read_record()
        except UserError:
            return
        saved.status, saved.message = status, message
        self.write_record(saved)

    def _commit_record(self, record: RunRecord) -> None:
        record.updated = now()
        record.created = record.created or record.updated
        atomic_write(self.record_path, record.model_dump_json(indent=2).encode())

    def append_metrics(self, line: dict[str, Any]) -> None:
        """Append one metrics line; non-finite values become ``"inf"``, ``"-inf"`` or ``"nan"``."""
        text = metrics_lines.format_line(line)
        try:
            append_text(self.metrics_path, self._file(METRICS_FILE), text)
        except OSError as error:
            raise self._save_refused(error) from None

    def read_record(self) -> RunRecord:
        """The validated record (:func:`engine.runs.record.read_record`)."""
        return read_record(self.path.parent, self.name)

    def read_tensors(self, file_name: str | None, what: str, max_bytes: int) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        if not file_name:
            raise UserError(f"Run {self.name!r} has no saved {what}; it was never checkpointed.")
        try:
            data = read_regular(self.path / file_name, self._file(file_name), max_bytes)
            tensors = load_tensors(data)
            metadata = _safetensors_metadata(data)
        except FileNotFoundError:
            raise UserError(
                f"Run {self.name!r} is missing its {what} file {file_name!r}; remove or restore {str(self.path)!r}."
            ) from None
        except (SafetensorError, ValueError, json.JSONDecodeError, UnicodeDecodeError) as error:
            raise UserError(
                f"Run {self.name!r} has a truncated or corrupt {what} file ({error}); remove or restore {str(self.path)!r}."
            ) from None
        return tensors, metadata

    def read_metrics(self, epochs_completed: int | None = None) -> list[dict[str, Any]]:
        """The run's history up to ``epochs_completed`` (:func:`engine.runs.record.read_run_history`)."""
        return read_run_history(self.path.parent, self.name, epochs_completed)


@dataclass
class LoadedRun:
    """A saved run, rebuilt: its record, its model (eval mode), its metric history."""

    record: RunRecord
    model: LanguageModel
    metrics: list[dict[str, Any]]

    @property
    def name(self) -> str:
        return self.record.name


def load_run(checkpoints: Path, name: str, device: str | torch.device = "cpu", with_metrics: bool = True) -> LoadedRun:
    """Rebuild a saved run from its folder; :class:`UserError` when it is missing, corrupt or foreign.

    Without ``with_metrics`` (generation needs none) ``metrics.jsonl`` is not read at all.
    """
    directory = RunDirectory(checkpoints, name)
    record = directory.read_record()
    model = build_model(directory, record)
    model.to(device).eval()
    metrics = directory.read_metrics(record.epochs_completed) if with_metrics else []
    return LoadedRun(record=record, model=model, metrics=metrics)


TENSOR_HEADER_BYTES = 2**20  # safetensors' JSON header: names, shapes and offsets


def _float32_bytes(record: RunRecord, copies: int) -> int:
    """The most a tensor file holding ``copies`` float32 copies of the run's model state can take."""
    return 4 * copies * state_count(len(record.vocab), record.config.model) + TENSOR_HEADER_BYTES


def build_model(directory: RunDirectory, record: RunRecord) -> LanguageModel:
    model = LanguageModel(len(record.vocab), record.config.model)
    state, _ = directory.read_tensors(record.weights_file, "weights", _float32_bytes(record, 1))
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise UserError(
            f"Run {record.name!r} has weights that do not fit its configuration ({str(error).splitlines()[0]}); "
            "remove or restore it."
        ) from None
    return model


def load_optimizer_state(directory: RunDirectory, record: RunRecord, optimizer: torch.optim.Optimizer) -> None:
    """Adam's saved moments into ``optimizer``; a state that does not fit the model is refused, not half-loaded."""
    tensors, metadata = directory.read_tensors(record.optimizer_file, "optimizer state", _float32_bytes(record, 2))
    try:
        optimizer.load_state_dict(_unflatten_optimizer(tensors, json.loads(metadata.get("param_groups", "[]"))))
    except (ValueError, KeyError, TypeError, IndexError, RuntimeError, RecursionError, AttributeError) as error:
        raise UserError(
            f"Run {record.name!r} has an optimizer state that does not fit its model ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else 'unreadable'}); remove or restore {str(directory.path)!r}."
        ) from None


@dataclass
class RunListing:
    """A saved run as the run lists show it: its record, or why it cannot be read."""

    name: str
    record: RunRecord | None
    problem: str | None = None


def list_runs(checkpoints: Path) -> list[RunListing]:
    """Every run folder under ``checkpoints``, newest first; unreadable ones say why."""
    root = Path(checkpoints)
    if not root.is_dir():
        return []
    listings = []
    for entry in os.scandir(root):
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        try:
            listings.append(RunListing(entry.name, RunDirectory(root, entry.name).read_record()))
        except UserError as error:
            listings.append(RunListing(entry.name, None, str(error)))
    return sorted(listings, key=lambda item: item.record.updated if item.record else "", reverse=True)


def _contiguous(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors as safetensors takes them: contiguous, on the CPU, none sharing memory (a tied output layer's
    weight is its embedding's: it is written under both names, as a copy)."""
    seen: set[int] = set()
    tensors = {}
    for key, value in state.items():
        tensor = value.detach().contiguous().cpu()
        if tensor.data_ptr() in seen:
            tensor = tensor.clone()
        seen.add(tensor.data_ptr())
        tensors[key] = tensor
    return tensors


def _flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """Optimizer state as flat tensors ``<param>.<key>`` plus its JSON-able param groups."""
    state = optimizer.state_dict()
    tensors = {
        f"{param}.{key}": (value if torch.is_tensor(value) else torch.tensor(value)).detach().contiguous().cpu()
        for param, entries in state["state"].items()
        for key, value in entries.items()
    }
    return tensors, state["param_groups"]


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], groups: list[dict[str, Any]]) -> dict[str, Any]:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for flat, value in tensors.items():
        param, key = flat.split(".", 1)
        state.setdefault(int(param), {})[key] = value
    return {"state": state, "param_groups": groups}


def _safetensors_metadata(data: bytes) -> dict[str, str]:
    header_size = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + header_size]).get("__metadata__", {}) or {}
