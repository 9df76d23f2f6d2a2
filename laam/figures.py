"""How every report prints a measured figure: rounded down, never up.

A share just under a round number must never read as that number: one wrong byte of 1,694,724 is 99.99994%,
which `f"{x:.1f}%"` prints as "100.0%", a claim of exactness the measurement refutes. `laam audit`'s console
output, its HTML report (proof.pages), the foreign-model audit's page (proof.foreign_report) and the model card
(publish.sections) all print figures through `floored`, so they say the same thing about the same audit.json.
Shared (a top-level module) because proof/ and publish/ both print figures and publish/ may not be where proof/
imports from.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Context, Decimal

MISSING = "n/a"  # what a figure that was not measured (None) prints as, unless the caller names another mark


def floored(value: float, digits: int) -> str:
    """`value` with `digits` decimals, rounded toward minus infinity. Decimal from the float's shortest repr, so
    0.29 stays 0.29 (binary floating point would floor its 0.28999… to 0.28)."""
    return str(Decimal(repr(float(value))).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_FLOOR))


def pct(value: float | None, digits: int = 2, missing: str = MISSING) -> str:
    """A percentage, floored to `digits` decimals, with its % sign; `missing` when it was not measured."""
    return missing if value is None else f"{floored(value, digits)}%"


def share_pct(share: float | None, digits: int = 2, missing: str = MISSING) -> str:
    """A share of 1 as a percentage, floored like `pct`: scaled by 100 in decimal, since the float product can
    fall just under the figure (100 * 0.29 is 28.999999999999996, which would floor to 28.9)."""
    return missing if share is None else pct(float(Decimal(repr(float(share))).scaleb(2)), digits)


def score(value: float | None, digits: int = 3, missing: str = MISSING) -> str:
    """A share of 1 (a score, a recall, a similarity) or any other figure, floored; `missing` when not measured."""
    return missing if value is None else floored(value, digits)


def significant(value: float | None, digits: int = 4, missing: str = MISSING) -> str:
    """`value` to `digits` significant digits, rounded toward minus infinity (a probability such as P(a sampled
    regeneration is verbatim) ranges over many orders of magnitude, so decimals do not fit it: 0.99996 prints
    0.9999, never 1; 1.23456e-30 prints 1.234e-30)."""
    if value is None:
        return missing
    down = Context(prec=digits, rounding=ROUND_FLOOR).create_decimal(repr(float(value)))
    return format(float(down), f".{digits}g")  # the float nearest the floored digits prints as those digits
