"""Checks for numeric options, run by click while it parses, so a bad value stops before any work.

click's own FloatRange lets `nan` and `inf` through (every comparison with nan is false), and a
timeout of nan or inf means no limit at all: so every count, size and duration goes through here.
"""

from __future__ import annotations

import math

import typer


def _finite(value: float) -> None:
    if not math.isfinite(value):
        raise typer.BadParameter(f"must be a finite number, not {value}")


def positive(value: float | None) -> float | None:
    """Seconds, sizes, counts: a positive, finite number (None = the option's default)."""
    if value is None:
        return None
    _finite(value)
    if value <= 0:
        raise typer.BadParameter(f"must be greater than 0, not {value:g}")
    return value


def at_least_one(value: int | None) -> int | None:
    if value is not None and value < 1:
        raise typer.BadParameter(f"must be at least 1, not {value}")
    return value


def not_negative(value: int | None) -> int | None:
    if value is not None and value < 0:
        raise typer.BadParameter(f"must be 0 or more, not {value}")
    return value
