"""Where a training step's time goes, and the floor this machine puts under it (printed with measure 0).

For the study's model in both batchings (``--preset paper``'s prefix rows, and the document split
with document batching), :data:`STEPS` training steps of the trainer's own code
(:func:`engine.training.trainer.forward`, the fused head, fused Adam), each phase timed apart, the
device synchronized between them:

- data: building the batch and moving it to the device;
- LSTM: the features' forward (embedding, LSTM, dropout) plus the backward pass, which past the
  fused head's stored gradients is the LSTM's;
- head: the fused head's forward, which computes the loss, its gradients and the live metrics;
- optimizer: ``zero_grad`` and Adam's step.

The floor is what this machine's measured rates allow for the same work:

    floor = (F_lstm + F_head) / R_matmul + 7 · 4 B · N_params / R_memory

``F_lstm = 3 · S · 2 · 4H(E + H)`` over the step's S token steps as the model runs them (prefix
rows: the shared padding once plus ``B·K`` columns, :mod:`engine.lm.prefix_lstm`; documents:
``B·T``), ``F_head = 3 · n · 2HV`` for its n scored positions (forward, ∂W, ∂h), ``R_matmul`` the
rate of ``torch.matmul`` at the output layer's shape ``(n × H) @ (H × V)``, and Adam's
floor the 7 float32 streams it must move per parameter (read weight, gradient and two moments,
write weight and moments) at ``R_memory``, the bandwidth of a copy of a 256 MiB tensor (read +
written bytes over its time). The element-wise passes of the head and the LSTM's small sequential
products are left out: the floor is an optimistic bound. Ratio: measured step ÷ floor (target ≤ 2×).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

from bench.context import Bench
from bench.table import Row, seconds, skipped
from bench.timing import synchronize
from bench.workloads import DOCUMENT_BATCHING
from engine.config.models import TrainConfig
from engine.lm.batching import Batch, DocumentBatches, PrefixBatches
from engine.lm.model import LanguageModel
from engine.lm.sizes import parameter_count
from engine.lm.stacked_model import adam
from engine.objective.head import Fusion, head_loss_and_metrics, plan_fusion
from engine.objective.metrics import MetricTotals
from engine.objective.total import Objective
from engine.training.trainer import epoch_seed, make_split, resolve_device

MEASURE = "0 peer: one training step, phase by phase, vs this machine's floor"
STEPS = 60  # 20 with --quick
WARM_UP = 5
TARGET = 2.0
COPY_BYTES = 256 << 20
ADAM_STREAMS = 7
SETTINGS = {"paper": {}, "document": DOCUMENT_BATCHING}


@dataclass
class Phases:
    """Median seconds per step of each phase, and the work the steps did."""

    data: float
    lstm: float
    head: float
    optimizer: float
    token_steps: float
    scored: float

    @property
    def total(self) -> float:
        return self.data + self.lstm + self.head + self.optimizer


def measure(bench: Bench, key: str) -> list[Row]:
    """The breakdown and floor rows of workload ``key``, for both batchings."""
    workload = bench.workloads[key]
    if not workload.available:
        return [skipped(key, MEASURE, workload.missing or "absent")]
    rows = []
    for setting, extra in SETTINGS.items():
        config = workload.config(bench.run_name("breakdown"), bench.device, dict(extra))
        corpus = workload.corpus()
        device = resolve_device(config.train.device)
        split = make_split(config, corpus)
        torch.manual_seed(config.train.seed)
        model = LanguageModel(len(corpus.vocab), config.model).to(device)
        steps = bench.pick(20, STEPS)
        phases = time_phases(model, split.train, Objective(config.objective), config.train, device, steps)
        model_config, vocab = config.model, len(corpus.vocab)
        hidden = model_config.hidden_size
        per_token = sum(
            2 * 4 * hidden * ((model_config.embedding_dim if layer == 0 else hidden) + hidden)
            for layer in range(model_config.num_layers)
        )
        flops = 3 * (phases.token_steps * per_token + phases.scored * 2 * hidden * vocab)
        rate = matmul_rate(round(phases.scored), hidden, vocab, device)
        bandwidth = copy_bandwidth(device)
        adam_bytes = ADAM_STREAMS * 4 * parameter_count(vocab, model_config)
        floor = flops / rate + adam_bytes / bandwidth
        label = "--preset paper" if setting == "paper" else "paper model, document batching"
        epoch = phases.total * len(split.train)
        rows.append(
            Row(
                key,
                f"{MEASURE} ({label}; data {ms(phases.data)}, LSTM {ms(phases.lstm)}, head {ms(phases.head)}, "
                f"optimizer {ms(phases.optimizer)}; × {len(split.train)} steps = {seconds(epoch)} per epoch's training)",
                ms(phases.total),
                f"floor {ms(floor)}: {flops / 1e6:.3g} MFLOP at {rate / 1e9:.3g} GFLOP/s, "
                f"Adam {adam_bytes / 2**20:.3g} MiB at {bandwidth / 1e9:.3g} GB/s",
                phases.total / floor,
                f"≤ {TARGET:g}×",
                phases.total / floor <= TARGET,
            )
        )
    return rows


def time_phases(
    model: LanguageModel,
    batches: DocumentBatches | PrefixBatches,
    objective: Objective,
    train: TrainConfig,
    device: torch.device,
    steps: int,
) -> Phases:
    """Median per-phase seconds over ``steps`` steps of the first epoch (after :data:`WARM_UP`), as the trainer runs them."""
    optimizer = adam(model.parameters(), train.lr, train.adam_eps)
    fusion = plan_fusion(device, "off")
    head = model.config.head
    model.train()
    times: dict[str, list[float]] = {"data": [], "lstm": [], "head": [], "optimizer": []}
    token_steps, scored = [], []
    for step, members in enumerate(batches.epoch(epoch_seed(train.seed, 0))[: WARM_UP + steps]):
        optimizer.zero_grad(set_to_none=True)  # as the trainer does: backward then hands its gradients over, no add
        clock = _Clock(device)
        batch = batches.build(members).to(device)
        data = clock.lap()
        hidden, target = _features(model, batch)
        lstm_forward = clock.lap()
        loss = _head(model, objective, hidden, target, head, fusion)
        head_time = clock.lap()
        loss.backward()
        lstm_backward = clock.lap()
        optimizer.step()
        optimizer_time = clock.lap()
        if step >= WARM_UP:
            times["data"].append(data)
            times["lstm"].append(lstm_forward + lstm_backward)
            times["head"].append(head_time)
            times["optimizer"].append(optimizer_time)
            rows, width = batch.inputs.shape
            token_steps.append(batch.pads + rows * (width - batch.pads) if batch.pads is not None else rows * width)
            scored.append(target.shape[0])
    medians = {name: statistics.median(values) for name, values in times.items()}
    return Phases(**medians, token_steps=statistics.mean(token_steps), scored=statistics.mean(scored))


def _features(model: LanguageModel, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """What :func:`engine.training.trainer.forward` hands the head: features at the scored positions and their targets."""
    if batch.last_only:
        return model.features(batch.inputs, last_only=True, pads=batch.pads), batch.targets
    scored = batch.targets > 0
    return model.features(batch.inputs, scored=scored), batch.targets[scored]


def _head(
    model: LanguageModel, objective: Objective, hidden: torch.Tensor, target: torch.Tensor, head: str, fusion: Fusion
) -> torch.Tensor:
    """The fused head's loss, with its live metrics, as the trainer computes it."""
    output = model.output
    return head_loss_and_metrics(hidden, output.weight, output.bias, target, objective, head, MetricTotals(), fusion=fusion)


class _Clock:
    """Seconds between laps, the device synchronized at each."""

    def __init__(self, device: torch.device):
        self.device = device
        synchronize(device)
        self.last = time.perf_counter()

    def lap(self) -> float:
        synchronize(self.device)
        now = time.perf_counter()
        elapsed, self.last = now - self.last, now
        return elapsed


def matmul_rate(rows: int, inner: int, cols: int, device: torch.device, repeats: int = 30) -> float:
    """FLOP/s of ``torch.matmul`` at ``(rows × inner) @ (inner × cols)``, the best of ``repeats`` timed products."""
    a, b = torch.randn(rows, inner, device=device), torch.randn(inner, cols, device=device)
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        torch.matmul(a, b)
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2.0 * rows * inner * cols / best


def copy_bandwidth(device: torch.device, repeats: int = 10) -> float:
    """Bytes per second read and written by the best of ``repeats`` copies of a :data:`COPY_BYTES` tensor."""
    source = torch.ones(COPY_BYTES // 4, device=device)
    target = torch.empty_like(source)
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        target.copy_(source)
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2.0 * COPY_BYTES / best


def ms(value: float) -> str:
    return f"{value * 1e3:.3g} ms"
