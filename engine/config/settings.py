"""Every run setting as one :class:`Setting`, read from its pydantic field — the one place it is defined.

A field of :mod:`engine.config.models`'s section models carries its type, bounds and help text, and
(through :func:`engine.config.models.option`) its command-line flag, metavar and whether a resumed run
may change it. From that alone come: the CLI's options (:func:`add_options`, the overrides they
give with :func:`given_overrides`), the check of one typed value with one plain sentence
(:meth:`Setting.check`, used by the CLI and the app's form), and the README's options table
(:func:`markdown_table`; ``python -m engine.config.settings`` prints it).
"""

from __future__ import annotations

import argparse
import math
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import annotated_types
from pydantic import AfterValidator, BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from engine.config.models import CorpusConfig, ModelConfig, ObjectiveConfig, OneOf, TrainConfig
from engine.errors import UserError

SECTIONS: dict[str, type[BaseModel]] = {
    "corpus": CorpusConfig,
    "model": ModelConfig,
    "objective": ObjectiveConfig,
    "train": TrainConfig,
}


@dataclass(frozen=True)
class Setting:
    """One configurable field: ``key`` is dotted (``model.num_layers``), ``flag`` its option (``--layers``)."""

    key: str
    info: FieldInfo

    @property
    def extra(self) -> dict[str, Any]:
        return self.info.json_schema_extra if isinstance(self.info.json_schema_extra, dict) else {}

    @property
    def name(self) -> str:
        return self.key.partition(".")[2]

    @property
    def flag(self) -> str:
        return str(self.extra.get("flag") or "--" + self.name.replace("_", "-"))

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")

    @property
    def resumable(self) -> bool:
        """Whether a resumed run may change it (epochs, device, where the corpus lies)."""
        return bool(self.extra.get("resumable"))

    @property
    def help(self) -> str:
        return self.info.description or ""

    @cached_property
    def base_type(self) -> Any:
        """``int``, ``float``, ``str``, ``list`` or a ``Literal``, without ``None``."""
        arguments = [arg for arg in typing.get_args(self.info.annotation) if arg is not type(None)]
        if typing.get_origin(self.info.annotation) in (typing.Union, types.UnionType):
            return arguments[0]
        return self.info.annotation

    @property
    def choices(self) -> tuple[str, ...] | None:
        """A ``Literal``'s values, or the registry's names of a :class:`~engine.config.models.OneOf` field (``--loss``, ``--regularizer``)."""
        if typing.get_origin(self.base_type) is typing.Literal:
            return typing.get_args(self.base_type)
        return next(
            (
                item.func.choices
                for item in self.info.metadata
                if isinstance(item, AfterValidator) and isinstance(item.func, OneOf)
            ),
            None,
        )

    @property
    def is_list(self) -> bool:
        return typing.get_origin(self.base_type) is list

    @property
    def metavar(self) -> str | None:
        if self.choices:
            return None
        return str(self.extra.get("metavar") or {int: "N", float: "X"}.get(self.base_type, "TEXT"))

    @cached_property
    def bounds(self) -> tuple[tuple[float | None, bool], tuple[float | None, bool]]:
        """((low, open), (high, open)) from the field's ge/gt/le/lt constraints."""
        low: tuple[float | None, bool] = (None, False)
        high: tuple[float | None, bool] = (None, False)
        for item in self.info.metadata:
            if isinstance(item, annotated_types.Ge):
                low = (_number(item.ge), False)
            elif isinstance(item, annotated_types.Gt):
                low = (_number(item.gt), True)
            elif isinstance(item, annotated_types.Le):
                high = (_number(item.le), False)
            elif isinstance(item, annotated_types.Lt):
                high = (_number(item.lt), True)
        return low, high

    @property
    def wanted(self) -> str:
        """What a value must be, in plain words: ``a whole number from 1 to 8``, ``a finite number > 0``, ``one of a, b``."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.base_type not in (int, float):
            return str(self.extra.get("wanted") or "text")
        kind = "a whole number" if self.base_type is int else "a finite number"
        (low, low_open), (high, high_open) = self.bounds
        if low is not None and high is not None and not (low_open or high_open):
            return f"{kind} from {low:g} to {high:g}" if self.base_type is float else f"{kind} from {int(low)} to {int(high)}"
        parts = [
            f"{'>' if low_open else '≥'} {low:g}" if low is not None else "",
            f"{'<' if high_open else '≤'} {high:g}" if high is not None else "",
        ]
        return " ".join([kind, " and ".join(part for part in parts if part)]).strip()

    @cached_property
    def _adapter(self) -> TypeAdapter[Any]:
        field_type: Any = typing.Annotated[self.info.annotation, self.info]  # made at run time: no static type to give
        return TypeAdapter(field_type)

    def convert(self, text: str) -> Any:
        """The value typed as ``text`` (one item of a list setting), checked against this field alone.

        Raises :class:`UserError`: ``--layers must be a whole number from 1 to 8, not '1000000'.``
        """
        try:
            value: Any = text
            if self.base_type is int:
                value = int(text.strip())
            elif self.base_type is float:
                value = float(text.strip())
                if not math.isfinite(value):
                    raise ValueError(text)
            self._adapter.validate_python([value] if self.is_list else value)
        except (ValueError, ValidationError):
            raise UserError(f"{self.flag} must be {self.wanted}, not {text!r}.") from None
        return value

    def problem(self, text: str) -> str | None:
        """Why ``text`` is refused (``must be …``), or None: the app's form shows it under the field."""
        try:
            self.convert(text)
        except UserError:
            return f"must be {self.wanted}"
        return None


def _number(bound: object) -> float:
    """A field's bound, which annotated_types types only as comparable; every bound of a setting is a number."""
    if not isinstance(bound, (int, float)):
        raise TypeError(f"a setting's bound must be a number, not {bound!r}")
    return bound


def settings() -> list[Setting]:
    """Every setting, section by section, in field order."""
    return [
        Setting(f"{section}.{name}", info) for section, model in SECTIONS.items() for name, info in model.model_fields.items()
    ]


def setting(key: str) -> Setting:
    """The setting with dotted ``key``; KeyError when there is none."""
    section, _, name = key.partition(".")
    return Setting(key, SECTIONS[section].model_fields[name])


def _argument_type(item: Setting) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return item.convert(text)
        except UserError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return convert


def add_options(parser: argparse.ArgumentParser, keys: Iterable[str] | None = None) -> None:
    """One option per setting (or per ``keys``), grouped by section; each overrides the preset only when given."""
    chosen = set(keys) if keys is not None else None
    groups: dict[str, Any] = {}
    for item in settings():
        if chosen is not None and item.key not in chosen:
            continue
        section = item.key.partition(".")[0]
        group = groups.get(section) or groups.setdefault(section, parser.add_argument_group(section))
        options: dict[str, Any] = {"help": item.help, "dest": item.dest}
        if item.choices:
            options["choices"] = item.choices
        else:
            options.update(type=_argument_type(item), metavar=item.metavar)
        if item.is_list:
            options.update(nargs="+", action="extend")
        group.add_argument(item.flag, **options)


def given_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Dotted key → value for each setting given on the command line."""
    return {item.key: getattr(args, item.dest) for item in settings() if getattr(args, item.dest, None) is not None}


def markdown_table() -> str:
    """The README's options table: flag, what it sets, its default and what it accepts."""
    rows = ["| option | setting | default | accepts | meaning |", "|---|---|---|---|---|"]
    for item in settings():
        default = item.info.get_default(call_default_factory=True)
        shown = "–" if default in (None, []) else f"`{default}`"
        rows.append(f"| `{item.flag}` | `{item.key}` | {shown} | {item.wanted} | {item.help} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())


def describe_validation_error(error: ValidationError) -> str:
    """The first problem of a pydantic error as one sentence naming the setting (and its flag, in the settings' wording)."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "configuration"
    given = first.get("input")
    try:
        item = setting(where)
    except (KeyError, ValueError):
        item = None
    if item is not None and first["type"] != "value_error":
        return f"Setting {where} ({item.flag}) must be {item.wanted}, not {given!r}."
    message = first["msg"].removeprefix("Value error, ")
    shown = "" if isinstance(given, dict) or given is None else f" (got {given!r})"
    return f"Setting {where}: {message}{shown}."
