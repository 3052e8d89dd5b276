"""R copies of :class:`~engine.lm.model.LanguageModel` with their parameters stacked along a leading run axis.

Every parameter of the solo model, shape ``S``, becomes one leaf tensor of shape ``(R, *S)``;
member ``r``'s slice ``[r]`` is exactly the solo parameter (same name, shape and memory layout),
so a member's weights and Adam moments are saved by slicing. One Adam over the stacked tensors
is R solo Adams: its update is element-wise and all members share the step count.

The forward runs the solo model's own code (:func:`torch.func.functional_call` on a shell
``LanguageModel``) once per member with that member's slices, and the random generator reset to
the same state before each member, so every member draws the dropout masks its solo twin draws
and the generator ends where one solo forward leaves it. The per-member outputs are stacked into
``(R, n, V)`` for the objectives. The gradient reaches the stacked leaves through one ``unbind``
per parameter.

**Two forms of the same forward** (:func:`recurrent_form`, by device):

- ``per-member`` (CPU): the solo model's own code once per member, as above. On a CPU the
  recurrent work is compute-bound and R solo kernels are as fast as any stacked form.
- ``block-diagonal`` (CUDA): one call of the solo model's LSTM kernel for all members, its
  weights the members' blocks on the diagonal of an ``(R·4H) × (R·E)`` input and ``(R·4H) × (R·H)``
  recurrent matrix (zeros elsewhere, rebuilt from the stacked leaves at every forward, so the
  gradient reaches only the blocks), one embedding gather, one dropout draw shared by all members
  (each solo twin draws that same mask), one batched output product. On a launch-bound GPU the
  per-member form costs R times the launches of one run (measured on an H100:
  ``docs/design/stacking.md``). Exactness: a block-diagonal
  product adds exact zeros, so a member's values differ from its solo twin's only by the kernel's
  reduction order. Independence: ``0 · NaN`` is NaN, so a non-finite member could poison the
  others through the zero blocks; the forward zeroes the parameters of a member that holds a
  non-finite value (``finite`` says which, and the trainer counts that member as diverged), and
  the gradient reaching the LSTM's outputs has non-finite entries set to 0 (a finite entry is
  left exactly as it is; a member with a non-finite gradient has a non-finite loss that step).
  Not covered: a gradient that overflows inside the wide kernel's own backward pass through time
  (it would need recurrent weights near float32's range) would reach the others.
  Used only when the LSTM has one layer or no dropout between layers (the kernel's own dropout
  between layers would draw other masks than the solo runs').

GRU and transformer stacks always take the per-member form: it needs nothing of the architecture
but the solo forward, so its members equal their solo twins as an LSTM's do (tested). A wide
block-diagonal GRU would follow the LSTM's construction with 3 gates; a transformer has no single
recurrent kernel to widen (its members' products could be batched with ``bmm`` instead). Neither
was built: on this project's CPU the per-member form is the fastest one measured, and no GPU was
at hand to measure what the other forms would save there.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from engine.lm.batching import Batch
from engine.lm.model import LanguageModel


class StackedModel:
    """The stacked parameters of R members sharing ``shell``'s architecture; ``shell`` also serves to save a member."""

    def __init__(self, shell: LanguageModel, params: list[nn.Parameter]):
        self.shell = shell
        self.names = [name for name, _ in shell.named_parameters()]
        self.params = params

    @classmethod
    def replicate(cls, model: LanguageModel, count: int) -> StackedModel:
        """``count`` members, each starting from ``model``'s weights (the solo initialization for the shared seed)."""
        params = [
            nn.Parameter(parameter.detach().unsqueeze(0).repeat(count, *([1] * parameter.dim())))
            for parameter in model.parameters()
        ]
        return cls(model, params)

    @property
    def count(self) -> int:
        return self.params[0].shape[0]

    def train(self, mode: bool = True) -> None:
        self.shell.train(mode)

    def __call__(self, batch: Batch, members: range | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Raw outputs ``(R, n, V)`` at the batch's scored positions, their target word indices ``(n,)``, and ``finite`` ``(R,)``.

        The same positions and targets as :func:`engine.training.trainer.forward` takes for a solo model;
        ``members`` (default all) limits the outputs to those members. ``finite[r]`` is False when
        member ``r``'s parameters hold a non-finite value, which the block-diagonal form zeroes (its
        outputs are then meaningless); the per-member form needs no such guard, since a member's
        non-finite values reach only its own outputs and loss, so there every entry is True.
        """
        scored = None if batch.last_only else batch.targets > 0
        target_index = batch.targets if scored is None else batch.targets[scored]
        chosen = list(members or range(self.count))
        if recurrent_form(batch.inputs.device, self.shell, len(chosen)) == "block-diagonal":
            params: list[torch.Tensor] = (
                list(self.params) if len(chosen) == self.count else [parameter[chosen] for parameter in self.params]
            )
            finite = torch.stack([torch.isfinite(parameter.detach()).flatten(1).all(1) for parameter in params]).all(0)
            return self._block_diagonal(params, finite, batch.inputs, scored), target_index, finite
        options: dict[str, bool | torch.Tensor] = {"last_only": True} if scored is None else {"scored": scored}
        every = torch.ones(len(chosen), dtype=torch.bool, device=batch.inputs.device)
        return self._per_member(chosen, batch.inputs, options), target_index, every

    def _per_member(self, chosen: list[int], tokens: torch.Tensor, options: dict[str, bool | torch.Tensor]) -> torch.Tensor:
        state = _rng_state(tokens.device) if self.shell.training else None
        slices = [parameter.unbind(0) for parameter in self.params]
        raws = []
        for r in chosen:
            if state is not None:
                _set_rng_state(tokens.device, state)
            weights = {name: member[r] for name, member in zip(self.names, slices, strict=True)}
            raws.append(functional_call(self.shell, weights, (tokens,), options, strict=True))
        return torch.stack(raws)

    def _block_diagonal(
        self, params: list[torch.Tensor], finite: torch.Tensor, tokens: torch.Tensor, scored: torch.Tensor | None
    ) -> torch.Tensor:
        """The solo forward of :class:`~engine.lm.model.LanguageModel` for all members at once (module docstring):
        at the positions ``scored``, or at each sequence's last position when None."""
        members = finite.shape[0]
        weights = {
            name: torch.where(finite.view(-1, *[1] * (parameter.dim() - 1)), parameter, 0.0)
            for name, parameter in zip(self.names, params, strict=True)
        }
        embedding = weights.pop("embedding.weight")
        vocab = embedding.shape[1]
        offsets = torch.arange(members, device=tokens.device).view(-1, 1, 1) * vocab
        inputs = F.embedding(tokens.unsqueeze(0) + offsets, embedding.reshape(members * vocab, -1))  # (R, B, T, E)
        inputs = inputs.permute(1, 2, 0, 3).flatten(2)  # (B, T, R·E): member r's features in block r
        lstm = _lstm(self.shell)
        big = {name: _block_diagonal(weights.pop(f"lstm.{name}")) for name, _ in lstm.named_parameters()}
        hidden, _ = functional_call(_wide_lstm(lstm, members), big, (inputs,), strict=True)
        if hidden.requires_grad:
            hidden.register_hook(_finite_gradient)
        hidden = hidden.unflatten(2, (members, -1))  # (B, T, R, H)
        hidden = hidden[:, -1] if scored is None else hidden[scored]
        hidden = hidden.transpose(0, 1)  # (R, n, H)
        if self.shell.training and self.shell.dropout.p > 0:
            hidden = hidden * F.dropout(hidden.new_ones(hidden.shape[1:]), self.shell.dropout.p)  # the solo twins' one mask
        return torch.baddbmm(weights["output.bias"].unsqueeze(1), hidden, weights["output.weight"].transpose(1, 2))

    def select(self, keep: list[int]) -> StackedModel:
        """A stack of the members ``keep`` (in that order), with parameters of their own."""
        index = torch.tensor(keep, device=self.params[0].device)
        return StackedModel(self.shell, [nn.Parameter(parameter.detach().index_select(0, index)) for parameter in self.params])

    @torch.no_grad()
    def load_member(self, r: int) -> LanguageModel:
        """The shell holding member ``r``'s weights (copied in), ready to be saved as a solo model."""
        for target, parameter in zip(self.shell.parameters(), self.params, strict=True):
            target.copy_(parameter[r])
        return self.shell


def recurrent_form(device: torch.device, shell: LanguageModel, members: int) -> str:
    """``block-diagonal`` on CUDA when the model is an LSTM with one layer or no dropout between layers and the wide
    LSTM stays within :data:`WIDE_HIDDEN_LIMIT` units, else ``per-member`` (module docstring; GRU and transformer
    stacks are always per-member)."""
    if shell.config.arch != "lstm":
        return "per-member"
    lstm = _lstm(shell)
    narrow = members * lstm.hidden_size <= WIDE_HIDDEN_LIMIT
    if device.type == "cuda" and (lstm.num_layers == 1 or lstm.dropout == 0) and narrow:
        return "block-diagonal"
    return "per-member"


def _lstm(shell: LanguageModel) -> nn.LSTM:
    lstm = shell.recurrent
    if not isinstance(lstm, nn.LSTM):
        raise TypeError(f"the block-diagonal form is an LSTM's, not a {shell.config.arch}'s")
    return lstm


def _block_diagonal(stacked: torch.Tensor) -> torch.Tensor:
    """Members' LSTM weights ``(R, 4H, K)`` (or biases ``(R, 4H)``) as one wide LSTM's, gate by gate.

    The wide LSTM's gate ``g`` rows ``g·RH + r·H … g·RH + r·H + H`` belong to member ``r``; its
    columns ``r·K … r·K + K`` read member ``r``'s inputs. Everything off the blocks is zero.
    """
    members, rows = stacked.shape[:2]
    hidden = rows // 4
    gates: torch.Tensor = stacked.unflatten(1, (4, hidden)).transpose(0, 1)  # (4, R, H[, K])
    if stacked.dim() == 2:
        return gates.flatten()
    width = stacked.shape[2]
    wide = stacked.new_zeros(4, members, hidden, members, width)
    index = torch.arange(members, device=stacked.device)
    wide[:, index, :, index, :] = gates.transpose(0, 1)  # advanced indices first: (R, 4, H, K)
    return wide.reshape(4 * members * hidden, members * width)


WIDE_HIDDEN_LIMIT = 4096
"""The most units (members × hidden size) the wide LSTM gets. Its matrices grow as R²: at 4096 units its recurrent
weights are 4·4096² floats (268 MB) per layer, held again as their gradient and cuDNN's packed copy, and R times the
useful products. A bound on memory, not a speed crossover (``docs/design/stacking.md``)."""

_WIDE_LSTMS: dict[tuple[int, int, int, int], nn.LSTM] = {}


def _wide_lstm(lstm: nn.LSTM, members: int) -> nn.LSTM:
    """An ``nn.LSTM`` shell of ``members`` times ``lstm``'s sizes (on the meta device: its weights come from the call)."""
    key = (lstm.input_size, lstm.hidden_size, lstm.num_layers, members)
    if key not in _WIDE_LSTMS:
        _WIDE_LSTMS[key] = nn.LSTM(
            lstm.input_size * members, lstm.hidden_size * members, num_layers=lstm.num_layers, batch_first=True, device="meta"
        )
    return _WIDE_LSTMS[key]


def _finite_gradient(grad: torch.Tensor) -> torch.Tensor:
    """The gradient with non-finite entries set to 0, so ``0 · NaN`` in the wide LSTM's backward cannot reach another member."""
    cleaned: torch.Tensor = torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)
    return cleaned


def adam(params: Iterable[torch.Tensor], lr: float, eps: float) -> torch.optim.Adam:
    """The optimizer every trainer builds, over ``params``: Adam with its fused kernel (CPU and CUDA),
    one pass over all parameters per step. Measured on the study's W2 model (1.25 M parameters, the
    shared 2-core CPU under load): 17–38 ms per step fused against 185–315 ms for the default
    for-loop form and 91–377 ms for ``foreach``."""
    return torch.optim.Adam(params, lr=lr, eps=eps, fused=True)


@torch.no_grad()
def select_adam(optimizer: torch.optim.Adam, model: StackedModel, keep: list[int]) -> torch.optim.Adam:
    """An Adam over ``model`` (already cut to ``keep``) carrying the moments of the members kept."""
    group = optimizer.param_groups[0]
    selected = adam(model.params, group["lr"], group["eps"])
    index = torch.tensor(keep, device=model.params[0].device)
    for old, new in zip(optimizer.param_groups[0]["params"], model.params, strict=True):
        state = optimizer.state.get(old)
        if state:
            selected.state[new] = {
                key: value.clone() if key == "step" else value.index_select(0, index) for key, value in state.items()
            }
    return selected


@torch.no_grad()
def load_member_adam(optimizer: torch.optim.Adam, stacked: torch.optim.Adam, r: int) -> torch.optim.Adam:
    """``optimizer`` (over the shell's parameters) given member ``r``'s Adam state, as the solo run would hold it."""
    optimizer.state.clear()
    for own, parameter in zip(optimizer.param_groups[0]["params"], stacked.param_groups[0]["params"], strict=True):
        state = stacked.state.get(parameter)
        if state:
            optimizer.state[own] = {key: value if key == "step" else value[r] for key, value in state.items()}
    return optimizer


def _rng_state(device: torch.device) -> torch.Tensor:
    return torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state()


def _set_rng_state(device: torch.device, state: torch.Tensor) -> None:
    if device.type == "cuda":
        torch.cuda.set_rng_state(state, device)
    else:
        torch.set_rng_state(state)
