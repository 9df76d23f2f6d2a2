"""Flags made from config dataclasses: one flag per field, named as the field (`num_layers` is `--num-layers`), with
the help text the field declares (`laam.validation.setting`), listed under its group's panel in `--help`.

A flag left out is absent from what the command receives (click says where each value came from), not the field's
default: a preset's or recipe file's value holds unless the command line names the setting. That is why this is a
page of code over typer rather than tyro or jsonargparse (tyro tried on TrainConfig + ModelConfig): those hand back
every field filled with the dataclass default, so the command could not tell a given `--lr 3e-3` from a preset's lr;
they name nested fields `--train.lr`, a second name for each setting; and they are argparse parsers beside the typer
app, without its panels and one-line errors.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, Field, dataclass, fields
from typing import Annotated

import typer

from laam.validation import help_of

# where a value counts as given, by ParameterSource name (typer carries its own copy of click's enum)
GIVEN = ("COMMANDLINE", "ENVIRONMENT")
CONTEXT = "settings_context"  # the click context typer passes in, which says where each value came from


@dataclass(frozen=True)
class Group:
    """The flags of one config dataclass: its user-settable fields (`setting(..., flag=False)` ones are internal),
    or only `names`, less `skip`; `panel` is their heading in --help."""

    config: type
    panel: str
    names: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()

    def fields(self) -> list[Field]:
        chosen = [f for f in fields(self.config) if f.metadata.get("flag", True) and f.name not in self.skip]
        return [f for f in chosen if f.name in self.names] if self.names else chosen


def flag(name: str) -> str:
    """A field's flag: `max_file_size` -> `--max-file-size` (a recipe file's key is the field name itself)."""
    return "--" + name.replace("_", "-")


def _default(config_field: Field):
    if config_field.default is not MISSING:
        return config_field.default
    return config_field.default_factory() if config_field.default_factory is not MISSING else None


def _flag_type(hint):
    """The type a flag parses into: a field's type less None (no value a flag can spell; a field defaulting to it
    keeps the default), a tuple as a list (click's repeatable option)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    if typing.get_origin(hint) in (list, tuple):
        return list[typing.get_args(hint)[0]]
    return hint


def option(config_field: Field, hint, panel: str) -> inspect.Parameter:
    """The keyword parameter typer turns into the field's flag (a bool as `--name/--no-name`), the field's default
    shown as typer shows every default."""
    kind = _flag_type(hint)
    declared = f"{flag(config_field.name)}/--no-{flag(config_field.name)[2:]}" if kind is bool \
        else flag(config_field.name)
    text = help_of(config_field)
    if not text:
        raise TypeError(f"{config_field.name} has no help text: declare it with laam.validation.setting")
    default = _default(config_field)
    info = typer.Option(declared, help=text, rich_help_panel=panel)
    return inspect.Parameter(config_field.name, inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[kind | None, info],
                             default=list(default) if isinstance(default, tuple) else default)


def with_settings(**groups: Group) -> Callable:
    """Give a command one flag per field of each group. The command declares one parameter per group (`model`,
    `train`, …), and is called with, for each, a dict of the fields whose flag was given (field name -> value), on the
    command line or by an environment variable; the others keep the recipe's value."""
    def decorate(command: Callable) -> Callable:
        signature = inspect.signature(command, eval_str=True)
        made = {name: [option(f, typing.get_type_hints(group.config)[f.name], group.panel) for f in group.fields()]
                for name, group in groups.items()}
        own = [p for p in signature.parameters.values() if p.name not in groups]
        names = [p.name for p in own] + [p.name for params in made.values() for p in params]
        if len(names) != len(set(names)):  # a field named like another group's field or the command's own option
            raise TypeError(f"{command.__name__}: two flags share a name: "
                            f"{sorted({n for n in names if names.count(n) > 1})}")

        @functools.wraps(command)
        def run(**values):
            context = values.pop(CONTEXT)
            given = {name: {p.name: values.pop(p.name) for p in params} for name, params in made.items()}
            given = {name: {k: v for k, v in settings.items() if context.get_parameter_source(k).name in GIVEN}
                     for name, settings in given.items()}
            return command(**values, **given)

        context = inspect.Parameter(CONTEXT, inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)
        run.__signature__ = signature.replace(parameters=[*own, *(p for params in made.values() for p in params),
                                                          context])
        return run
    return decorate
