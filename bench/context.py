"""What every measure shares: options, workloads, a scratch folder, and results one measure reuses from another."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from bench.workloads import Workload

T = TypeVar("T")


@dataclass
class Bench:
    """One benchmark session. ``quick`` trades repetitions and epochs for a one-minute pass."""

    quick: bool
    device: str
    data_dir: Path
    scratch: Path
    workloads: dict[str, Workload]
    _counter: itertools.count = field(default_factory=itertools.count, repr=False)
    _memo: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def checkpoints(self) -> Path:
        return self.scratch / "checkpoints"

    def pick(self, quick: Any, full: Any) -> Any:
        return quick if self.quick else full

    def run_name(self, label: str) -> str:
        return f"{label}-{next(self._counter)}"

    def once(self, key: str, compute: Callable[[], T]) -> T:
        """``compute()``'s result, computed the first time ``key`` is asked for (e.g. timings two measures read)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]
