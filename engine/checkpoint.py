"""Runs on disk: ``<checkpoints>/<run>/`` holds weights, optimizer state, ``run.json`` and ``metrics.jsonl``.

- Weights and optimizer state are safetensors files named by the step they were saved at.
- ``run.json`` (a validated :class:`RunRecord`) names the current weights file: replacing it is
  the commit point of a save. New tensors are written first (temp file + rename), then
  ``run.json`` (temp file + rename), then the old tensors are removed, so a crash at any moment
  leaves a run whose ``run.json`` names complete files.
- ``metrics.jsonl`` gets one JSON line per live window and per epoch as training goes.

Loading never unpickles anything; it checks the format version and rebuilds the model from
``run.json`` alone.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ValidationError
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

import engine
from engine.config import RunConfig
from engine.errors import UserError
from engine.model import LanguageModel

FORMAT_VERSION = 1
RECORD_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
Status = Literal["training", "finished", "stopped", "diverged", "failed"]


class RunRecord(BaseModel):
    """Everything about a run except its tensors: enough to rebuild, resume and compare it."""

    format_version: int = FORMAT_VERSION
    name: str
    config: RunConfig
    vocab: list[str]
    corpus_fingerprint: str
    corpus_sources: list[str]
    corpus_stats: dict[str, int]
    prefix_width: int
    train_pairs: int
    val_pairs: int
    steps_per_epoch: int
    status: Status = "training"
    epochs_completed: int = 0
    step: int = 0
    batch_in_epoch: int = 0
    partial_epoch: dict[str, Any] | None = None
    metrics: dict[str, float] = {}
    message: str | None = None
    weights_file: str | None = None
    optimizer_file: str | None = None
    versions: dict[str, str] = {}
    created: str = ""
    updated: str = ""

    @property
    def epoch_progress(self) -> float:
        """Epochs trained, fractional when stopped mid-epoch."""
        return self.epochs_completed + self.batch_in_epoch / max(self.steps_per_epoch, 1)


def versions() -> dict[str, str]:
    return {"lm-explorer": engine.__version__, "torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version()}


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a part."""
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(handle, 0o644)
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


class RunDirectory:
    """One run's folder and its files."""

    def __init__(self, checkpoints: Path, name: str):
        self.path = Path(checkpoints) / name
        self.name = name

    @property
    def record_path(self) -> Path:
        return self.path / RECORD_FILE

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    def exists(self) -> bool:
        return self.record_path.is_file()

    def save(self, record: RunRecord, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None) -> None:
        """Commit weights (+ optimizer state) and the record, atomically as a set (module docstring).

        The tensor files of the save before stay one save longer, so a reader that has just read
        the previous ``run.json`` still finds the files it names.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        keep = {record.weights_file, record.optimizer_file}
        tag = f"e{record.epochs_completed}-s{record.step}"
        record.weights_file = f"model-{tag}.safetensors"
        atomic_write(self.path / record.weights_file, save_tensors(_contiguous(model.state_dict())))
        if optimizer is not None:
            record.optimizer_file = f"optimizer-{tag}.safetensors"
            tensors, layout = _flatten_optimizer(optimizer)
            atomic_write(self.path / record.optimizer_file, save_tensors(tensors, metadata={"param_groups": json.dumps(layout)}))
        self.write_record(record)
        keep |= {record.weights_file, record.optimizer_file}
        for stale in self.path.glob("*.safetensors"):
            if stale.name not in keep:
                stale.unlink(missing_ok=True)

    def write_record(self, record: RunRecord) -> None:
        record.updated = now()
        record.created = record.created or record.updated
        atomic_write(self.record_path, record.model_dump_json(indent=2).encode())

    def append_metrics(self, line: dict[str, Any]) -> None:
        with self.metrics_path.open("a", encoding="utf-8") as file:
            file.write(json.dumps(line) + "\n")

    def read_record(self) -> RunRecord:
        if not self.path.is_dir():
            raise UserError(f"No run named {self.name!r} in {str(self.path.parent)!r}; 'lm-explorer runs' lists the saved runs.")
        try:
            raw = json.loads(self.record_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"Run {self.name!r} has no {RECORD_FILE}; it is not a complete run, remove {str(self.path)!r}.") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise UserError(f"Run {self.name!r} is corrupt ({RECORD_FILE} is not valid JSON: {error}); remove or restore {str(self.path)!r}.") from None
        version = raw.get("format_version") if isinstance(raw, dict) else None
        if version != FORMAT_VERSION:
            raise UserError(
                f"Run {self.name!r} was saved in checkpoint format {version!r}, but this lm-explorer reads format {FORMAT_VERSION}; "
                "open it with the lm-explorer version that wrote it."
            )
        try:
            return RunRecord.model_validate(raw)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise UserError(f"Run {self.name!r} is corrupt ({RECORD_FILE} field {where}: {first['msg']}); remove or restore {str(self.path)!r}.") from None

    def read_tensors(self, file_name: str | None, what: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        if not file_name:
            raise UserError(f"Run {self.name!r} has no saved {what}; it was never checkpointed.")
        try:
            data = (self.path / file_name).read_bytes()
            tensors = load_tensors(data)
            metadata = _safetensors_metadata(data)
        except FileNotFoundError:
            raise UserError(f"Run {self.name!r} is missing its {what} file {file_name!r}; remove or restore {str(self.path)!r}.") from None
        except (SafetensorError, ValueError, json.JSONDecodeError) as error:
            raise UserError(f"Run {self.name!r} has a truncated or corrupt {what} file ({error}); remove or restore {str(self.path)!r}.") from None
        return tensors, metadata

    def read_metrics(self, epochs_completed: int | None = None) -> list[dict[str, Any]]:
        """The metric lines, last one winning for a repeated (kind, step), up to ``epochs_completed``."""
        if not self.metrics_path.is_file():
            return []
        lines: dict[tuple[str, int], dict[str, Any]] = {}
        for text in self.metrics_path.read_text(encoding="utf-8").splitlines():
            try:
                line = json.loads(text)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash mid-append
            if epochs_completed is not None and line.get("epoch", 0) > epochs_completed + 1:
                continue
            lines[(line.get("kind", ""), line.get("step", 0))] = line
        return sorted(lines.values(), key=lambda line: (line.get("step", 0), line.get("kind") == "epoch"))


@dataclass
class LoadedRun:
    """A saved run, rebuilt: its record, its model (eval mode), its metric history."""

    record: RunRecord
    model: LanguageModel
    metrics: list[dict[str, Any]]

    @property
    def name(self) -> str:
        return self.record.name


def load_run(checkpoints: Path, name: str, device: str | torch.device = "cpu") -> LoadedRun:
    """Rebuild a saved run from its folder; :class:`UserError` when it is missing, corrupt or foreign."""
    directory = RunDirectory(checkpoints, name)
    record = directory.read_record()
    model = build_model(directory, record)
    model.to(device).eval()
    return LoadedRun(record=record, model=model, metrics=directory.read_metrics(record.epochs_completed))


def build_model(directory: RunDirectory, record: RunRecord) -> LanguageModel:
    model = LanguageModel(len(record.vocab), record.config.model)
    state, _ = directory.read_tensors(record.weights_file, "weights")
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise UserError(f"Run {record.name!r} has weights that do not fit its configuration ({str(error).splitlines()[0]}); remove or restore it.") from None
    return model


def load_optimizer_state(directory: RunDirectory, record: RunRecord, optimizer: torch.optim.Optimizer) -> None:
    tensors, metadata = directory.read_tensors(record.optimizer_file, "optimizer state")
    optimizer.load_state_dict(_unflatten_optimizer(tensors, json.loads(metadata.get("param_groups", "[]"))))


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
    for folder in root.iterdir():
        if not folder.is_dir() or folder.name.startswith("."):
            continue
        try:
            listings.append(RunListing(folder.name, RunDirectory(root, folder.name).read_record()))
        except UserError as error:
            listings.append(RunListing(folder.name, None, str(error)))
    return sorted(listings, key=lambda item: (item.record.updated if item.record else ""), reverse=True)


def _contiguous(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {key: value.detach().contiguous().cpu() for key, value in state.items()}


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
