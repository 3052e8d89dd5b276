"""The Setup panel: corpus, preset, objective, weight (or a sweep's weights) and training settings.

Every field is checked as it is typed, through the engine's own parsers and
:func:`engine.config.build_run_config`, and the reason for a refusal is shown under the field.
The Train button stays disabled until the whole form is valid and the corpus has loaded. The
corpus is loaded in a worker thread (``engine.corpus`` imports numpy) to show its counts and to
refuse a path that is not a corpus before any run starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Button, Input, Label, Select, Static

from engine.config import LOSSES, PARAMETRIC_LOSSES, PRESETS, REGULARIZERS, CorpusConfig, build_run_config, parse_weight, parse_weights
from engine.errors import UserError
from tui.widgets.ordered_input import OrderedInput

CORPUS_DEBOUNCE_S = 0.4
NO_PRESET = "none"

# Numeric fields: input id → (label, config key, converter, what a bad value must be).
NUMBER_FIELDS: dict[str, tuple[str, str, type, str]] = {
    "epochs": ("Epochs", "train.epochs", int, "a whole number ≥ 1"),
    "batch-size": ("Batch size", "train.batch_size", int, "a whole number ≥ 1"),
    "lr": ("Learning rate", "train.lr", float, "a finite number > 0, such as 1e-3"),
    "train-seed": ("Training seed", "train.seed", int, "a whole number"),
}


@dataclass(frozen=True)
class FormReading:
    """What the form holds: per-run overrides (one per weight), or the reasons it is not valid."""

    preset: str | None
    overrides: list[dict[str, Any]]
    errors: dict[str, str]
    problem: str | None = None

    @property
    def valid(self) -> bool:
        return not self.errors and self.problem is None and bool(self.overrides)


def corpus_paths(text: str) -> list[str]:
    """Comma-separated paths; none means the embedded corpus."""
    return [part.strip() for part in text.split(",") if part.strip()]


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
    SetupForm .field Input, SetupForm .field Select { width: 1fr; max-width: 60; }
    SetupForm .reason { display: none; color: $text-error; padding-left: 15; height: auto; }
    SetupForm .reason.-shown { display: block; }
    SetupForm #corpus-stats { padding-left: 15; color: $text-muted; height: auto; }
    SetupForm #corpus-stats.-error { color: $text-error; }
    SetupForm #form-status { margin-top: 1; height: auto; color: $text-muted; }
    SetupForm #form-status.-error { color: $text-error; }
    SetupForm #train { margin-top: 1; }
    """

    class TrainRequested(Message):
        """The user asked to train what the form holds: one run per entry of ``overrides``."""

        def __init__(self, preset: str | None, overrides: list[dict[str, Any]]) -> None:
            super().__init__()
            self.preset = preset
            self.overrides = overrides

    def __init__(self, corpus_paths: list[str], column: str | None, device: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._initial_paths = corpus_paths
        self._column = column
        self._device = device
        self.corpus: Any = None  # engine.corpus.Corpus once loaded
        self._corpus_key: tuple[tuple[str, ...], str | None] | None = None
        self._corpus_timer: Timer | None = None
        self.reading = FormReading(None, [], {}, "The corpus is loading.")

    def compose(self) -> ComposeResult:
        defaults = build_run_config("defaults")
        yield from _field("Corpus", OrderedInput(", ".join(self._initial_paths), placeholder="embedded Lee news corpus (or paths, comma-separated)",
                                          id="corpus", compact=True), "corpus")
        yield Static("", id="corpus-stats")
        yield from _field("Preset", Select([(NO_PRESET, NO_PRESET), *((name, name) for name in PRESETS)], value=NO_PRESET,
                                           allow_blank=False, compact=True, id="preset"), "preset")
        yield from _field("Base loss", Select([(loss, loss) for loss in LOSSES], value=defaults.objective.loss,
                                              allow_blank=False, compact=True, id="loss"), "loss")
        yield from _field("Loss parameter", OrderedInput("", placeholder="> 0; 1 is cross-entropy", id="loss-param", compact=True), "loss-param")
        yield from _field("Regularizer", Select([(name, name) for name in REGULARIZERS], value=defaults.objective.regularizer,
                                                allow_blank=False, compact=True, id="regularizer"), "regularizer")
        yield from _field("Weight", OrderedInput(f"{defaults.objective.weight:g}", placeholder="10, or 1e-7, 1, 10, 100 for a sweep",
                                          id="weight", compact=True), "weight")
        for name, (label, key, _, _) in NUMBER_FIELDS.items():
            section, _, setting = key.partition(".")
            value = getattr(getattr(defaults, section), setting)
            yield from _field(label, OrderedInput(f"{value:g}" if isinstance(value, float) else str(value), id=name, compact=True), name)
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
            "corpus.paths": corpus_paths(self.query_one("#corpus", Input).value),
            "corpus.column": self._column,
            "objective.loss": loss,
            "objective.regularizer": str(self.query_one("#regularizer", Select).value),
            "train.device": self._device,
        }
        if loss in PARAMETRIC_LOSSES:
            text = self.query_one("#loss-param", Input).value.strip()
            if not text:
                errors["loss-param"] = f"The {loss} loss needs a parameter > 0 (1 is cross-entropy)."
            else:
                self._check_number("loss-param", text, float, "a finite number > 0", "objective.loss_param", preset, base, errors)
        for name, (label, key, kind, wanted) in NUMBER_FIELDS.items():
            self._check_number(name, self.query_one(f"#{name}", Input).value.strip(), kind, wanted, key, preset, base, errors, label)
        weight_text = self.query_one("#weight", Input).value.strip()
        try:
            weights = parse_weights(weight_text) if "," in weight_text else [parse_weight(weight_text)]
        except UserError as error:
            errors["weight"] = str(error)
            weights = []
        if errors:
            return FormReading(preset, [], errors)
        overrides = [{**base, "objective.weight": weight} for weight in weights]
        try:
            for values in overrides:
                build_run_config("form", preset, values)
        except UserError as error:
            return FormReading(preset, [], {}, str(error))
        return FormReading(preset, overrides, {})

    @staticmethod
    def _check_number(name: str, text: str, kind: type, wanted: str, key: str, preset: str | None,
                      base: dict[str, Any], errors: dict[str, str], label: str = "The loss parameter") -> None:
        """Convert one numeric field and let the engine's config check its range."""
        try:
            value = kind(text)
        except ValueError:
            errors[name] = f"{label} {text!r} is not {wanted}."
            return
        try:
            build_run_config("form", preset, {**base, key: value})
        except UserError as error:
            errors[name] = str(error)
            return
        base[key] = value

    def revalidate(self) -> None:
        """Re-read the form; show reasons, the summary line and the Train button's state."""
        self.reading = self.read()
        for name in ("loss-param", "weight", *NUMBER_FIELDS):
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
        elif not corpus_ready:
            status.update("Waiting for the corpus to load.")
        else:
            runs = len(self.reading.overrides)
            status.update("Ready: 1 run. Train with ctrl+t." if runs == 1 else f"Ready: a sweep of {runs} runs, one per weight. Train with ctrl+t.")
        status.set_class(bool(self.reading.problem or self.reading.errors), "-error")
        self.query_one("#train", Button).disabled = not (self.reading.valid and corpus_ready)

    @property
    def ready(self) -> bool:
        """Whether Train would start runs now."""
        return not self.query_one("#train", Button).disabled

    def request_train(self) -> bool:
        """Post :class:`TrainRequested` if the form is ready; say why not otherwise."""
        self.revalidate()
        if not self.ready:
            reason = next(iter(self.reading.errors.values()), None) or self.reading.problem or "The corpus has not loaded yet."
            self.notify(reason, title="Cannot train yet", severity="warning")
            return False
        self.post_message(self.TrainRequested(self.reading.preset, self.reading.overrides))
        return True

    # Events ------------------------------------------------------------------------------------

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
            self._apply_preset(None if event.value == NO_PRESET else str(event.value))
        elif event.select.id == "loss":
            self.query_one("#loss-param-field").display = event.value in PARAMETRIC_LOSSES
        self.revalidate()

    @on(Button.Pressed, "#train")
    def _train_pressed(self) -> None:
        self.request_train()

    def _apply_preset(self, preset: str | None) -> None:
        """Show the preset's loss and training settings in the fields (they override it when sent)."""
        config = build_run_config("preset", preset)
        self.query_one("#loss", Select).value = config.objective.loss
        for name, (_, key, _, _) in NUMBER_FIELDS.items():
            if name == "train-seed":
                continue
            section, _, setting = key.partition(".")
            value = getattr(getattr(config, section), setting)
            self.query_one(f"#{name}", Input).value = f"{value:g}" if isinstance(value, float) else str(value)

    # Corpus ------------------------------------------------------------------------------------

    def _wanted_corpus_key(self) -> tuple[tuple[str, ...], str | None]:
        return tuple(corpus_paths(self.query_one("#corpus", Input).value)), self._column

    def _load_corpus(self) -> None:
        key = self._wanted_corpus_key()
        if key == self._corpus_key and self.corpus is not None:
            return
        self.corpus, self._corpus_key = None, None
        stats = self.query_one("#corpus-stats", Static)
        stats.update("Loading the corpus…")
        stats.remove_class("-error")
        self.revalidate()
        self._read_corpus(key)

    @work(thread=True, exclusive=True, group="corpus")
    def _read_corpus(self, key: tuple[tuple[str, ...], str | None]) -> None:
        """Load and count the corpus off the UI thread; report with a message."""
        from engine.corpus import load_corpus

        paths, column = key
        try:
            corpus = load_corpus(CorpusConfig(paths=list(paths), column=column))
        except UserError as error:
            self.post_message(CorpusRead(key, None, str(error)))
        else:
            self.post_message(CorpusRead(key, corpus, None))

    def on_corpus_read(self, message: CorpusRead) -> None:
        if message.key != self._wanted_corpus_key():
            return  # the path changed while this one loaded
        stats = self.query_one("#corpus-stats", Static)
        if message.corpus is None:
            stats.update(message.error or "")
            stats.add_class("-error")
            self.notify(message.error or "", title="Corpus not loaded", severity="error")
        else:
            self.corpus, self._corpus_key = message.corpus, message.key
            s = message.corpus.stats
            counts = f"{s.documents:,} documents · vocabulary {s.vocab_size:,} · {s.pairs:,} pairs · longest {s.longest} words"
            stats.update(counts if message.key[0] else f"{'; '.join(message.corpus.sources)}\n{counts}")
        self.revalidate()


class CorpusRead(Message):
    """A corpus finished loading (``corpus``) or was refused (``error``)."""

    def __init__(self, key: tuple[tuple[str, ...], str | None], corpus: Any, error: str | None) -> None:
        super().__init__()
        self.key = key
        self.corpus = corpus
        self.error = error
