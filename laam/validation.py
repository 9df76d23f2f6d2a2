"""Checks of settings where they are parsed: each config dataclass states its rules as data (`RULES`, field name ->
`Range` or `OneOf`), and `validate` holds every field to its declared type, every number to being finite, and
the ruled fields to their rule. The CLI and recipe files build the same dataclasses, so both are checked here;
a field that breaks a rule is one `SettingError` line naming the setting, the rule and the value given.

Each field's help text sits beside it (`setting`), so the CLI's flags, a recipe file's keys and the docs read one
description of one name (laam/cli/options.py builds `laam train`'s flags from them)."""

from __future__ import annotations

import math
import os
import types
import typing
from dataclasses import MISSING, Field, dataclass, fields
from dataclasses import field as dataclass_field
from functools import cache

from laam.errors import LaamError


def setting(default=MISSING, help: str = "", *, default_factory=MISSING, flag: bool = True):  # noqa: A002
    """A config dataclass field with its help text (shown by `--help`); `flag=False` keeps an internal field (set by
    code, never by a user) off the command line."""
    return dataclass_field(default=default, default_factory=default_factory, metadata={"help": help, "flag": flag})


def help_of(config_field: Field) -> str:
    return config_field.metadata.get("help", "")


class SettingError(LaamError):
    """A setting with the wrong type or out of range; `key` names it (a recipe file's key, a flag's field)."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class Range:
    """A closed interval of numbers; an open end (low_open/high_open) excludes its bound."""

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False

    def holds(self, value) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def __str__(self) -> str:
        if math.isinf(self.high):
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if math.isinf(self.low):
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"


@dataclass(frozen=True)
class OneOf:
    choices: tuple[str, ...]

    def holds(self, value) -> bool:
        return value in self.choices

    def __str__(self) -> str:
        return f"one of {', '.join(self.choices)}"


AT_LEAST_0 = Range(0)
AT_LEAST_1 = Range(1)
POSITIVE = Range(0, low_open=True)
FRACTION = Range(0, 1)


def check_value(key: str, value, rule: Range | OneOf, what: str = "") -> None:
    """One setting against its rule (numbers must also be finite); `what` names the settings' group."""
    name = f"{what} setting {key}" if what else key
    if isinstance(value, float) and not math.isfinite(value):
        raise SettingError(key, f"{name} must be a finite number, got {value}")
    if not rule.holds(value):
        raise SettingError(key, f"{name} must be {rule}, got {value!r}")


@cache
def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _fits(value, hint) -> bool:
    """Whether a value parsed from a file or a flag has a field's declared type. Written out because the configs
    use only a handful of types (int, float, bool, str, their lists, unions with None) and the only library that
    checks dataclasses strictly here (pydantic) is no dependency of laam."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if origin in (list, tuple):
        return isinstance(value, (list, tuple)) and all(_fits(v, args[0]) for v in value) if args else True
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    if isinstance(hint, type) and issubclass(hint, os.PathLike):
        return isinstance(value, (str, os.PathLike))
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def _type_name(hint) -> str:
    """A type as a recipe file's author reads it: `float`, `int or None`, `a list of str`."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in args)
    if origin in (list, tuple):
        return f"a list of {_type_name(args[0])}" if args else "a list"
    return "None" if hint is type(None) else getattr(hint, "__name__", str(hint))


def validate(config, what: str) -> None:
    """Every field of a config dataclass has its declared type and obeys its class's RULES (numbers finite)."""
    hints, rules = _hints(type(config)), getattr(config, "RULES", {})
    for field in fields(config):
        value = getattr(config, field.name)
        if not _fits(value, hints[field.name]):
            raise SettingError(field.name, f"{what} setting {field.name} must be {_type_name(hints[field.name])}, "
                                           f"got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise SettingError(field.name, f"{what} setting {field.name} must be a finite number, got {value}")
        if field.name in rules and value is not None:
            check_value(field.name, value, rules[field.name], what)
