"""The command palette's own commands (ctrl+p): the app's main actions by name.

A :class:`~textual.command.Provider`, as Textual and Posting arrange palettes: each command is a
title, a line of help and the action it runs, listed when the palette opens and fuzzy-matched as
the user types.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Protocol, TypeAlias, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

from tui.widgets.generation import GenerationPanel
from tui.widgets.plots import MetricPlots
from tui.widgets.runs_table import RunsTable

PaletteCommand: TypeAlias = tuple[str, str, Callable[[], object]]
"""A palette command: its title, a line of help, and the action it runs."""


class PaletteHost(Protocol):
    """What the palette's commands act on: the app's widgets and run actions (:class:`tui.app.ExplorerApp`)."""

    plots: MetricPlots
    generation: GenerationPanel
    runs_table: RunsTable

    def action_train(self) -> None: ...
    def action_stop_run(self) -> None: ...
    def action_resume_run(self) -> None: ...
    def action_continue_run(self) -> None: ...
    def action_rename_run(self) -> None: ...
    def action_delete_run(self) -> None: ...
    def action_toggle_run(self) -> None: ...
    def action_show_only(self) -> None: ...
    def action_hide_all(self) -> None: ...
    def action_help(self) -> None: ...
    def action_show_tab(self, tab: str) -> None: ...


def commands(app: PaletteHost) -> list[PaletteCommand]:
    """Each palette command."""
    plots, generation = app.plots, app.generation
    listed: list[PaletteCommand] = [
        ("Train", "Start the run (or sweep) the Setup form holds", app.action_train),
        ("Stop run", "Stop the highlighted run; its checkpoint is saved", app.action_stop_run),
        ("Resume run", "Resume the highlighted stopped run", app.action_resume_run),
        ("More epochs", "Train the highlighted run further: asks how many epochs more", app.action_continue_run),
        ("Rename run", "Rename the highlighted run (its folder)", app.action_rename_run),
        ("Delete run", "Delete the highlighted run and its folder, after asking", app.action_delete_run),
        ("Show or hide run", "Toggle the highlighted run in plots and generation", app.action_toggle_run),
        ("Show only this run", "Hide every other run", app.action_show_only),
        ("Hide all runs", "Hide every run from plots and generation", app.action_hide_all),
        ("Run details", "The highlighted run's settings beside the other shown runs'", app.runs_table.action_details),
        ("Log scale", "Toggle a log y axis on the plots", plots.action_toggle_log),
        ("Training / validation series", "Entropy and KL from training windows or validation", plots.action_toggle_validation),
        ("Smoothing", "Cycle the exponential moving average 0 / 0.6 / 0.9", plots.action_cycle_smoothing),
        ("Save metrics as CSV", "Every metrics line of the shown runs, to a file here", plots.action_export_csv),
        (
            "Save plots as a figure",
            "The pane set in view as PNG, SVG and PDF (matplotlib), to files here",
            plots.action_export_figure,
        ),
        ("Greedy / top-5 sampling", "Switch the generation strategy", generation.action_toggle_sampling),
        ("Copy generations as Markdown", "The seeds × runs table, to the clipboard", generation.action_copy_markdown),
        ("Save generations as Markdown", "The seeds × runs table, to a file here", generation.action_export_markdown),
        ("Help", "List every key", app.action_help),
    ]
    tabs: list[PaletteCommand] = [
        (f"{title} tab", f"Go to the {title} tab", partial(app.action_show_tab, tab))
        for tab, title in (("setup", "Setup"), ("plots", "Plots"), ("generate", "Generate"))
    ]
    return listed + tabs


class ExplorerCommands(Provider):
    """lm-explorer's actions in the command palette."""

    async def discover(self) -> Hits:
        for title, help_text, callback in commands(cast(PaletteHost, self.app)):
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in commands(cast(PaletteHost, self.app)):
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
