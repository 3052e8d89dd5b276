"""The Setup panel: corpus, preset, architecture, objective, weight and seed (or a grid's weights and seeds) and training settings.

Every field is checked as it is typed against its own pydantic field (type and bounds, read from
the engine's config models, so a bound added there is enforced here), without touching the
input; the whole form is then checked once per run with :func:`engine.config.presets.build_run_config`.
The reason for a refusal is shown under the field, in the same plain wording for every field.
The Train button stays disabled until the whole form is valid and the corpus has loaded. The
corpus is loaded in a worker thread (``engine.lm.corpus`` imports numpy) to show its counts and to
refuse a path that is not a corpus before any run starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual import events, on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Button, Input, Label, Select, Static
from textual.widgets.select import InvalidSelectValueError

from engine.config.grid import SEED, Axis, describe, grid_points, parse_seeds, varying
from engine.config.grid import WEIGHT as WEIGHT_KEY
from engine.config.models import (
    PARAMETRIC_LOSSES,
    RUN_NAME_PATTERN,
    RUN_NAME_RULE,
    SMOOTHING,
    CorpusConfig,
    RunConfig,
    parse_weight,
    parse_weights,
)
from engine.config.presets import PRESETS, build_run_config
from engine.config.settings import SECTIONS, setting
from engine.errors import UserError
from engine.runs.names import grid_names
from tui.widgets.ordered_input import OrderedInput

CORPUS_DEBOUNCE_S = 0.4
NO_PRESET = "none"
# The regularizer's number: a penalty's weight, or label smoothing's ε (sent as objective.weight, which config reads as its ε)
WEIGHT = ("Weight", "10, or 1e-7, 1, 10, 100 for a sweep")
EPSILON = ("Smoothing ε", "0.1, or 0.05, 0.1, 0.2 for a sweep")

# Numeric fields: input id → (label, config key). Type and bounds come from the config's field.
NUMBER_FIELDS: dict[str, tuple[str, str]] = {
    "epochs": ("Epochs", "train.epochs"),
    "batch-size": ("Batch size", "train.batch_size"),
    "lr": ("Learning rate", "train.lr"),
}
SEEDS = ("Training seed", "0, or 0-2 (or 0,1,2) for a seed group")


@dataclass(frozen=True)
class FormReading:
    """What the form holds: per-run overrides (one per point of its weights × seeds grid), or the reasons it is not valid."""

    preset: str | None
    overrides: list[dict[str, Any]]
    errors: dict[str, str]
    problem: str | None = None
    name: str | None = None  # the run's name, or the grid's stem; None: the app names the runs
    varying: tuple[str, ...] = ()  # the settings whose value differs between the runs (what their names add)
    grid: str = ""  # what the count is made of: "3 weights × 3 seeds"

    @property
    def valid(self) -> bool:
        return not self.errors and self.problem is None and bool(self.overrides)


def flat_settings(config: RunConfig) -> dict[str, Any]:
    """Every setting of a run as a dotted key (``model.hidden_size``), name and preset left out."""
    return {f"{section}.{key}": value for section in SECTIONS for key, value in getattr(config, section).model_dump().items()}


def corpus_paths(text: str) -> list[str]:
    """Comma-separated paths; none means the embedded corpus."""
    return [part.strip() for part in text.split(",") if part.strip()]


def _options(key: str) -> list[tuple[str, str]]:
    """A name setting's choices (the registries' names, :mod:`engine.objective.terms`) as a Select's options."""
    return [(name, name) for name in setting(key).choices or ()]


def _field(label: str, control: Widget, name: str) -> ComposeResult:
    """A labelled control on one line, and the line under it for the reason it is refused."""
    with Horizontal(classes="field", id=f"{name}-field"):
        yield Label(label)
        yield control
    yield Static("", classes="reason", id=f"{name}-reason")


class SetupForm(VerticalScroll):
    """The form that configures a run (or a sweep) and starts it."""

    DEFAULT_CSS = """
    SetupForm { padding: 0 1; }
    SetupForm .field { height: 1; margin-top: 1; }
    SetupForm .field Label { width: 15; color: $text-muted; }
    SetupForm .field.-focused Label { color: $text-accent; text-style: bold; }
    SetupForm .field Input:focus { background-tint: $accent 25%; }
    SetupForm .field Input, SetupForm .field Select { width: 1fr; max-width: 60; }
    SetupForm .reason { display: none; color: $text-error; padding-left: 15; height: auto; }
    SetupForm .reason.-shown { display: block; }
    SetupForm #corpus-stats { padding-left: 15; color: $text-muted; height: auto; }
    SetupForm #corpus-stats.-error { color: $text-error; }
    SetupForm #form-extra { height: auto; color: $text-muted; }
    SetupForm #form-status { margin-top: 1; height: auto; color: $text-muted; }
    SetupForm #form-status.-error { color: $text-error; }
    SetupForm #train { margin-top: 1; }
    """

    class TrainRequested(Message):
        """The user asked to train what the form holds: one run per entry of ``overrides``."""

        def __init__(
            self, preset: str | None, overrides: list[dict[str, Any]], name: str | None = None, varying: list[str] | None = None
        ) -> None:
            super().__init__()
            self.preset = preset
            self.overrides = overrides
            self.name = name  # the run's name (a grid's runs: name-w<weight>-s<seed>), or None for the default names
            self.varying = varying or []  # the settings the runs' names say

    class CorpusRead(Message):
        """A corpus finished loading (``corpus``) or was refused (``error``)."""

        def __init__(self, key: tuple[tuple[str, ...], str | None], corpus: Any, error: str | None) -> None:
            super().__init__()
            self.key = key
            self.corpus = corpus
            self.error = error

    def __init__(self, corpus_paths: list[str], column: str | None, device: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._initial_paths = corpus_paths
        self._column = column
        self._device = device
        self.corpus: Any = None  # engine.lm.corpus.Corpus once loaded
        self.corpus_error: str | None = None  # why the corpus the field names was refused
        self._corpus_key: tuple[tuple[str, ...], str | None] | None = None  # the corpus loaded or refused
        self._loading_key: tuple[tuple[str, ...], str | None] | None = None
        self._corpus_timer: Timer | None = None
        self.reading = FormReading(None, [], {}, "The corpus is loading.")
        self.extra: dict[str, Any] = {}  # settings the form has no field for, kept from a cloned run
        self._preset: str | None = None  # the preset whose values the fields show

    def compose(self) -> ComposeResult:
        defaults = build_run_config("defaults")
        yield from _field(
            "Corpus",
            OrderedInput(
                ", ".join(self._initial_paths),
                placeholder="embedded Lee news corpus (or paths, comma-separated)",
                id="corpus",
                compact=True,
            ),
            "corpus",
        )
        yield Static("", id="corpus-stats")
        yield from _field(
            "Preset",
            Select(
                [(NO_PRESET, NO_PRESET), *((name, name) for name in PRESETS)],
                value=NO_PRESET,
                allow_blank=False,
                compact=True,
                id="preset",
            ),
            "preset",
        )
        yield from _field(
            "Architecture",
            Select(_options("model.arch"), value=defaults.model.arch, allow_blank=False, compact=True, id="arch"),
            "arch",
        )
        yield from _field(
            "Base loss",
            Select(_options("objective.loss"), value=defaults.objective.loss, allow_blank=False, compact=True, id="loss"),
            "loss",
        )
        yield from _field(
            "Loss parameter", OrderedInput("", placeholder="> 0; 1 is cross-entropy", id="loss-param", compact=True), "loss-param"
        )
        yield from _field(
            "Regularizer",
            Select(
                _options("objective.regularizer"),
                value=defaults.objective.regularizer,
                allow_blank=False,
                compact=True,
                id="regularizer",
            ),
            "regularizer",
        )
        yield from _field(
            WEIGHT[0],
            OrderedInput(f"{defaults.objective.strength:g}", placeholder=WEIGHT[1], id="weight", compact=True),
            "weight",
        )
        for name, (label, key) in NUMBER_FIELDS.items():
            section, _, setting = key.partition(".")
            value = getattr(getattr(defaults, section), setting)
            yield from _field(
                label, OrderedInput(f"{value:g}" if isinstance(value, float) else str(value), id=name, compact=True), name
            )
        yield from _field(
            SEEDS[0], OrderedInput(str(defaults.train.seed), placeholder=SEEDS[1], id="train-seed", compact=True), "train-seed"
        )
        yield from _field(
            "Run name",
            OrderedInput("", placeholder="optional; default from the objective, e.g. ce-kl-10", id="run-name", compact=True),
            "run-name",
        )
        yield Static("", id="form-extra")
        yield Static("", id="form-status")
        yield Button("Train", id="train", variant="primary", disabled=True, compact=True)

    def on_mount(self) -> None:
        self.query_one("#loss-param-field").display = False
        self._load_corpus()

    # Reading and validating -------------------------------------------------------------------

    def read(self) -> FormReading:
        """Parse every field; per-field reasons, or one set of overrides per weight."""
        errors: dict[str, str] = {}
        preset = self.query_one("#preset", Select).value
        preset = None if preset == NO_PRESET else str(preset)
        loss = str(self.query_one("#loss", Select).value)
        base: dict[str, Any] = {
            **self.extra,
            "corpus.paths": corpus_paths(self.query_one("#corpus", Input).value),
            "corpus.column": self._column,
            "model.arch": str(self.query_one("#arch", Select).value),
            "objective.loss": loss,
            "objective.regularizer": str(self.query_one("#regularizer", Select).value),
            "train.device": self._device,
        }
        if loss in PARAMETRIC_LOSSES:
            text = self.query_one("#loss-param", Input).value.strip()
            try:
                base["objective.loss_param"] = setting("objective.loss_param").convert(text)
            except UserError:
                errors["loss-param"] = f"The {loss} loss needs a parameter that is a finite number > 0 (1 is cross-entropy)."
        for name, (label, key) in NUMBER_FIELDS.items():
            text = self.query_one(f"#{name}", Input).value.strip()
            try:
                base[key] = setting(key).convert(text)
            except UserError:
                errors[name] = f"{label} {text!r} is not {setting(key).wanted}."
        weight_text = self.query_one("#weight", Input).value.strip()
        try:
            weights = parse_weights(weight_text) if "," in weight_text else [parse_weight(weight_text)]
        except UserError as error:
            errors["weight"] = str(error)
            weights = []
        if len(weights) > 1 and base["objective.regularizer"] == "none":
            errors["weight"] = (
                f"Weight holds {len(weights)} weights, a sweep over the regularizer's weight, but Regularizer is "
                "none: choose a regularizer, or give one weight."
            )
        try:
            seeds = parse_seeds(self.query_one("#train-seed", Input).value, SEEDS[0])
        except UserError as error:
            errors["train-seed"] = str(error)
            seeds = []
        axes = [Axis(WEIGHT_KEY, tuple(weights)), Axis(SEED, tuple(seeds))]
        try:
            points = grid_points(axes)
        except UserError as error:
            return FormReading(preset, [], errors, str(error))
        run_name = self.query_one("#run-name", Input).value.strip() or None
        if errors:
            return FormReading(preset, [], errors)
        overrides = [{**base, **point} for point in points]
        try:
            configs = [build_run_config("form", preset, values) for values in overrides]
        except UserError as error:
            return FormReading(preset, [], {}, str(error))
        if run_name is not None and not all(
            RUN_NAME_PATTERN.fullmatch(run) for run in grid_names(run_name, configs, varying(axes))
        ):
            errors["run-name"] = (
                f"Run name {run_name!r} is not a plain name: use {RUN_NAME_RULE} (a grid adds -w<weight> and -s<seed>)."
            )
            return FormReading(preset, [], errors)
        return FormReading(preset, overrides, {}, name=run_name, varying=tuple(varying(axes)), grid=describe(axes))

    def revalidate(self) -> None:
        """Re-read the form; show reasons, the summary line and the Train button's state."""
        self.reading = self.read()
        for name in ("loss-param", "weight", *NUMBER_FIELDS, "train-seed", "run-name"):
            reason = self.reading.errors.get(name, "")
            self.query_one(f"#{name}-reason", Static).update(reason)
            self.query_one(f"#{name}-reason").set_class(bool(reason), "-shown")
            self.query_one(f"#{name}", Input).set_class(bool(reason), "-invalid")
        status = self.query_one("#form-status", Static)
        corpus_ready = self.corpus is not None and self._corpus_key == self._wanted_corpus_key()
        if self.reading.problem:
            status.update(self.reading.problem)
        elif self.reading.errors:
            status.update("Fix the fields marked above to train.")
        elif self.corpus_problem:
            status.update("The corpus did not load (see above): fix the path to train.")
        elif not corpus_ready:
            status.update("Waiting for the corpus to load.")
        else:
            runs = len(self.reading.overrides)
            status.update(
                "Ready: 1 run. Train with ctrl+t."
                if runs == 1
                else f"Ready: a grid of {runs} runs ({self.reading.grid}). Train with ctrl+t."
            )
        status.set_class(bool(self.reading.problem or self.reading.errors or self.corpus_problem), "-error")
        self.query_one("#train", Button).disabled = not (self.reading.valid and corpus_ready)

    @property
    def corpus_problem(self) -> str | None:
        """Why the corpus the field names now was refused, if it was."""
        return self.corpus_error if self._corpus_key == self._wanted_corpus_key() else None

    @property
    def ready(self) -> bool:
        """Whether Train would start runs now."""
        return not self.query_one("#train", Button).disabled

    def request_train(self) -> bool:
        """Post :class:`TrainRequested` if the form is ready; say why not otherwise."""
        self.revalidate()
        if not self.ready:
            corpus_problem = (
                f"The corpus did not load: {self.corpus_problem}"
                if self.corpus_problem
                else "The corpus is still loading; train once its counts show under Corpus."
            )
            reason = next(iter(self.reading.errors.values()), None) or self.reading.problem or corpus_problem
            self.notify(reason, title="Cannot train yet", severity="warning")
            return False
        reading = self.reading
        self.post_message(self.TrainRequested(reading.preset, reading.overrides, reading.name, list(reading.varying)))
        return True

    # Events ------------------------------------------------------------------------------------

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        """Mark the focused field's line (its label turns bold and accented): a focus ring for compact fields."""
        for field in self.query(".field"):
            field.set_class(event.widget in field.children, "-focused")

    def on_descendant_blur(self, event: events.DescendantBlur) -> None:
        for field in self.query(".field.-focused"):
            if event.widget in field.children:
                field.remove_class("-focused")

    @on(Input.Changed)
    def _input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "corpus":
            if self._corpus_timer is not None:
                self._corpus_timer.stop()
            self._corpus_timer = self.set_timer(CORPUS_DEBOUNCE_S, self._load_corpus)
        self.revalidate()

    @on(Input.Submitted)
    def _input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "corpus":
            self._load_corpus()
        self.screen.focus_next()

    @on(Select.Changed)
    def _select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "preset":
            preset = None if event.value == NO_PRESET else str(event.value)
            if preset != self._preset:  # a preset chosen by hand, not one a clone filled in
                self._preset, self.extra = preset, {}
                self.query_one("#form-extra", Static).update("")
                self._apply_preset(preset)
        elif event.select.id == "loss":
            self.query_one("#loss-param-field").display = event.value in PARAMETRIC_LOSSES
        elif event.select.id == "regularizer":
            label, placeholder = EPSILON if event.value in SMOOTHING else WEIGHT
            self.query_one("#weight-field Label", Label).update(label)
            self.query_one("#weight", Input).placeholder = placeholder
        self.revalidate()

    @on(Button.Pressed, "#train")
    def _train_pressed(self) -> None:
        self.request_train()

    def _apply_preset(self, preset: str | None) -> None:
        """Show the preset's loss and training settings in the fields (they override it when sent)."""
        config = build_run_config("preset", preset)
        self.query_one("#arch", Select).value = config.model.arch
        self.query_one("#loss", Select).value = config.objective.loss
        for name, (_, key) in NUMBER_FIELDS.items():
            section, _, setting = key.partition(".")
            value = getattr(getattr(config, section), setting)
            self.query_one(f"#{name}", Input).value = f"{value:g}" if isinstance(value, float) else str(value)

    # Remembering the form ----------------------------------------------------------------------

    FIELDS = ("corpus", "preset", "arch", "loss", "loss-param", "regularizer", "weight", *NUMBER_FIELDS, "train-seed", "run-name")

    def values(self) -> dict[str, str]:
        """Each field's text or choice, by field id."""
        return {name: str(self._control(name).value) for name in self.FIELDS}

    def _control(self, name: str) -> Input | Select[Any]:
        """The field ``name`` of :attr:`FIELDS`: its Input or Select."""
        control = self.query_one(f"#{name}")
        assert isinstance(control, (Input, Select)), f"#{name} is a {type(control).__name__}"
        return control

    def restore(self, values: dict[str, str], extra: dict[str, Any]) -> None:
        """Put back what :meth:`values` gave (unknown ids and choices not offered are skipped)."""
        preset = values.get("preset")
        if preset in (NO_PRESET, *PRESETS):
            self._preset = None if preset == NO_PRESET else preset
        for name, value in values.items():
            if name not in self.FIELDS:
                continue
            try:
                self._control(name).value = value
            except InvalidSelectValueError:
                continue  # a choice this version no longer offers
        self.extra = dict(extra)
        if self.extra:
            self.query_one("#form-extra", Static).update(
                "Also sent: " + ", ".join(f"{key}={value}" for key, value in self.extra.items())
            )
        self.revalidate()

    # Cloning a run --------------------------------------------------------------------------------

    def fill(self, config: RunConfig) -> None:
        """Put a run's settings in the form: its fields, and every other setting the preset would not give it.

        Those others (model size, split, log interval…) are listed under the form and sent with the run.
        """
        self._preset = config.preset
        self.query_one("#preset", Select).value = config.preset or NO_PRESET
        self._column = config.corpus.column
        self.query_one("#corpus", Input).value = ", ".join(config.corpus.paths)
        self.query_one("#arch", Select).value = config.model.arch
        self.query_one("#loss", Select).value = config.objective.loss
        self.query_one("#loss-param", Input).value = (
            "" if config.objective.loss_param is None else f"{config.objective.loss_param:g}"
        )
        self.query_one("#regularizer", Select).value = config.objective.regularizer
        self.query_one("#weight", Input).value = f"{config.objective.strength:g}"
        for name, (_, key) in NUMBER_FIELDS.items():
            section, _, setting = key.partition(".")
            value = getattr(getattr(config, section), setting)
            self.query_one(f"#{name}", Input).value = f"{value:g}" if isinstance(value, float) else str(value)
        self.query_one("#train-seed", Input).value = str(config.train.seed)
        self.query_one("#run-name", Input).value = ""
        preset_settings = flat_settings(build_run_config("preset", config.preset))
        shown = {
            "corpus.paths",
            "corpus.column",
            "model.arch",
            "objective.loss",
            "objective.loss_param",
            "objective.regularizer",
            "objective.weight",
            "objective.epsilon",
            "train.device",
            "train.seed",
            *(key for _, key in NUMBER_FIELDS.values()),
        }
        self.extra = {
            key: value for key, value in flat_settings(config).items() if key not in shown and preset_settings.get(key) != value
        }
        listed = ", ".join(f"{key}={value}" for key, value in self.extra.items())
        self.query_one("#form-extra", Static).update(
            f"Cloned from {config.name}; also sent: {listed}" if listed else f"Cloned from {config.name}."
        )
        self.revalidate()

    # Corpus ------------------------------------------------------------------------------------

    def _wanted_corpus_key(self) -> tuple[tuple[str, ...], str | None]:
        return tuple(corpus_paths(self.query_one("#corpus", Input).value)), self._column

    def _load_corpus(self) -> None:
        """Load the corpus the field names, unless it is the one loaded, loading, or already refused."""
        if self._corpus_timer is not None:
            self._corpus_timer.stop()
        key = self._wanted_corpus_key()
        if key in (self._corpus_key, self._loading_key):
            return
        self.corpus, self.corpus_error, self._corpus_key, self._loading_key = None, None, None, key
        stats = self.query_one("#corpus-stats", Static)
        stats.update("Loading the corpus…")
        stats.remove_class("-error")
        self.revalidate()
        self._read_corpus(key)

    @work(thread=True, exclusive=True, group="corpus")
    def _read_corpus(self, key: tuple[tuple[str, ...], str | None]) -> None:
        """Load and count the corpus off the UI thread; report with a message."""
        from engine.lm.corpus import load_corpus

        paths, column = key
        missing = next((path for path in paths if not Path(path).expanduser().exists()), None)
        if missing is not None:
            self.post_message(
                self.CorpusRead(
                    key,
                    None,
                    f"Corpus path {missing!r} does not exist; type the path of a .txt or .csv "
                    "file or a folder of them, or clear the field for the embedded corpus.",
                )
            )
            return
        try:
            corpus = load_corpus(CorpusConfig(paths=list(paths), column=column))
        except UserError as error:
            self.post_message(self.CorpusRead(key, None, str(error)))
        else:
            self.post_message(self.CorpusRead(key, corpus, None))

    @on(CorpusRead)
    def _corpus_read(self, message: CorpusRead) -> None:
        if message.key != self._loading_key:
            return  # the path changed while this one loaded
        self._loading_key, self._corpus_key = None, message.key
        stats = self.query_one("#corpus-stats", Static)
        if message.corpus is None:
            self.corpus_error = message.error
            stats.update(message.error or "")
            stats.add_class("-error")
            self.notify(message.error or "", title="Corpus not loaded", severity="error")
        else:
            self.corpus = message.corpus
            s = message.corpus.stats
            counts = f"{s.documents:,} documents · vocabulary {s.vocab_size:,} · {s.pairs:,} pairs · longest {s.longest} words"
            stats.update(counts if message.key[0] else f"{'; '.join(message.corpus.sources)}\n{counts}")
        self.revalidate()
