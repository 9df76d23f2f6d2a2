"""The HTML pages' renderer: jinja2 templates in laam/proof/templates, escaped by the engine.

Autoescape is on for every template, so a file path, a corpus name or a model id that holds markup is shown as
text; the only HTML that goes in unescaped is built here (`marked`) from escaped pieces. The filters are the
number formats the pages use, so the templates hold the markup and the callers hand over plain figures: a measured
share goes through `figure` (rounded down, never up to a round number), counts and sizes through `num`.
"""

from __future__ import annotations

from functools import cache

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup, escape

from laam.figures import floored, significant


def figure(value, digits: int = 1, suffix: str = "%") -> str:
    """A figure with `digits` decimals, rounded down (laam.figures: 99.96% is never "100.0%"), and `suffix`, or –
    when it was not measured (None)."""
    return "–" if value is None else f"{floored(value, digits)}{suffix}"


def marked(data: bytes, spans: list[tuple[int, int]], encoding: str) -> Markup:
    """`data` as HTML with the byte ranges `spans` (sorted, disjoint) wrapped in <mark>."""
    parts, at = [], 0
    for start, end in spans:
        parts.append(escape(data[at:start].decode(encoding, errors="replace")))
        parts.append(Markup("<mark>%s</mark>") % data[start:end].decode(encoding, errors="replace"))
        at = end
    parts.append(escape(data[at:].decode(encoding, errors="replace")))
    return Markup("").join(parts)


@cache
def environment() -> Environment:
    """One environment for the process: templates are parsed once. StrictUndefined: a missing figure is an error,
    not an empty cell."""
    env = Environment(loader=PackageLoader("laam.proof", "templates"), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = format  # {{ x|num(",") }}, {{ x|num(".3f") }}: Python's format specs
    env.filters["figure"] = figure
    env.filters["significant"] = significant  # a probability: 4 significant digits, rounded down
    env.filters["repr"] = repr
    return env


def render(template: str, **context) -> str:
    return environment().get_template(template).render(**context)
