"""R copies of :class:`~engine.model.LanguageModel` with their parameters stacked along a leading run axis.

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
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.func import functional_call

from engine.batching import Batch
from engine.model import LanguageModel


class StackedModel:
    """The stacked parameters of R members sharing ``shell``'s architecture; ``shell`` also serves to save a member."""

    def __init__(self, shell: LanguageModel, params: list[nn.Parameter]):
        self.shell = shell
        self.names = [name for name, _ in shell.named_parameters()]
        self.params = params

    @classmethod
    def replicate(cls, model: LanguageModel, count: int) -> StackedModel:
        """``count`` members, each starting from ``model``'s weights (the solo initialization for the shared seed)."""
        params = [nn.Parameter(parameter.detach().unsqueeze(0).repeat(count, *([1] * parameter.dim()))) for parameter in model.parameters()]
        return cls(model, params)

    @property
    def count(self) -> int:
        return self.params[0].shape[0]

    def train(self, mode: bool = True) -> None:
        self.shell.train(mode)

    def __call__(self, batch: Batch, members: range | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw outputs ``(R, n, V)`` at the batch's scored positions, and their target word indices ``(n,)``.

        The same positions and targets as :func:`engine.trainer.forward` takes for a solo model;
        ``members`` (default all) limits the outputs to those members.
        """
        options: dict[str, bool | torch.Tensor]
        if batch.last_only:
            options, target_index = {"last_only": True}, batch.targets
        else:
            scored = batch.targets > 0
            options, target_index = {"scored": scored}, batch.targets[scored]
        device = batch.inputs.device
        state = _rng_state(device) if self.shell.training else None
        slices = [parameter.unbind(0) for parameter in self.params]
        raws = []
        for r in members or range(self.count):
            if state is not None:
                _set_rng_state(device, state)
            weights = {name: member[r] for name, member in zip(self.names, slices, strict=True)}
            raws.append(functional_call(self.shell, weights, (batch.inputs,), options, strict=True))
        return torch.stack(raws), target_index

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


def adam(params: Sequence[torch.Tensor], lr: float, eps: float) -> torch.optim.Adam:
    """The optimizer the solo trainer builds, over ``params``."""
    return torch.optim.Adam(params, lr=lr, eps=eps)


@torch.no_grad()
def select_adam(optimizer: torch.optim.Adam, model: StackedModel, keep: list[int]) -> torch.optim.Adam:
    """An Adam over ``model`` (already cut to ``keep``) carrying the moments of the members kept."""
    group = optimizer.param_groups[0]
    selected = adam(model.params, group["lr"], group["eps"])
    index = torch.tensor(keep, device=model.params[0].device)
    for old, new in zip(optimizer.param_groups[0]["params"], model.params, strict=True):
        state = optimizer.state.get(old)
        if state:
            selected.state[new] = {key: value.clone() if key == "step" else value.index_select(0, index) for key, value in state.items()}
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
