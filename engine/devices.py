"""Which devices runs train on: one check of a device name against this machine's CUDA devices.

Torch is imported only to count CUDA devices (:func:`cuda_devices`), so the check itself serves
the trainer (:func:`engine.training.trainer.resolve_device`), the controller's placement of a sweep's jobs
and the app's launch checks alike.
"""

from __future__ import annotations

from engine.config.models import DEVICE_PATTERN
from engine.errors import UserError


def cuda_devices() -> int:
    """How many CUDA devices torch sees (imports torch)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_device(name: str, cuda_count: int) -> str:
    """``name`` (``cpu``, ``cuda`` or ``cuda:N``) when a machine with ``cuda_count`` CUDA devices has it, else a one-sentence UserError."""
    if name == "auto" or not DEVICE_PATTERN.fullmatch(name):
        raise UserError(
            f"Device {name!r} is not a device lm-explorer trains on; use auto, cpu, cuda or cuda:N "
            "(a sweep also takes a list such as cuda:0,cuda:1)."
        )
    kind, _, index = name.partition(":")
    if kind == "cuda" and not cuda_count:
        raise UserError(f"Device {name!r} was asked for but this machine has no CUDA GPU; use --device cpu or auto.")
    if index and int(index) >= cuda_count:
        raise UserError(f"Device {name!r} does not exist: this machine has {cuda_count} CUDA device(s).")
    return name


def parse_devices(spec: str, cuda_count: int) -> list[str]:
    """``auto`` → every CUDA device, else ``cpu``; ``cpu``; ``cuda``/``cuda:N``; or a comma-separated list of CUDA devices."""
    if spec == "auto":
        return [f"cuda:{index}" for index in range(cuda_count)] or ["cpu"]
    devices = [check_device(part.strip(), cuda_count) for part in spec.split(",") if part.strip()]
    if not devices:
        raise UserError("--device is empty; give auto, cpu, cuda, cuda:N or a list such as cuda:0,cuda:1.")
    if "cpu" in devices and len(devices) > 1:
        raise UserError("--device mixes cpu with CUDA devices; give cpu alone, or CUDA devices only.")
    return devices
