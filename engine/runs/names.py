"""Run names: the legal-name rule's check, default names, and a sweep member's name (the CLI and the app alike).

A run's name is its folder's name (:data:`engine.config.models.RUN_NAME_PATTERN`, in words
:data:`~engine.config.models.RUN_NAME_RULE`). A run given no name is called after its objective,
its regularizer's strength and the time (``mse-kl-w10-20261203-141500``); the runs of a sweep
named ``NAME`` are ``NAME-w<weight>`` (``NAME-w10``), one per weight.
"""

from __future__ import annotations

from datetime import datetime

from engine.config.models import RUN_NAME_PATTERN, RUN_NAME_RULE, RunConfig
from engine.errors import UserError
from engine.formatting import objective_label


def check_name(name: str, what: str = "Run name") -> str:
    """``name`` if it is a plain run folder name, else the sentence saying what one is."""
    if not RUN_NAME_PATTERN.fullmatch(name):
        raise UserError(f"{what} {name!r} is not a plain folder name: use {RUN_NAME_RULE}.")
    return name


def default_run_name(config: RunConfig) -> str:
    """``<objective>[-w<strength>]-<date>-<time>``: what the run does, and when it was started."""
    label = objective_label(config.objective).replace(" + ", "-").replace("(", "").replace(")", "")
    weight = f"-w{config.objective.strength:g}" if config.objective.regularizer != "none" else ""
    return f"{label}{weight}-{datetime.now():%Y%m%d-%H%M%S}"


def sweep_member_name(name: str, weight: float) -> str:
    """The run of sweep ``name`` with regularizer weight ``weight``: ``name-w<weight>``."""
    return f"{name}-w{weight:g}"


def run_names(name: str, weights: list[float]) -> list[str]:
    """The names a form or command entry with ``name`` starts: ``name`` for one run, a sweep member's name per weight."""
    return [name] if len(weights) <= 1 else [sweep_member_name(name, weight) for weight in weights]
