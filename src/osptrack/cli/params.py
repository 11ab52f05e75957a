"""Options more than one command declares, each declared once here, and the checks of numbers.

Each command passes its own help text (what the option means there); the name, type, default and
check are the same everywhere. The checks run while click parses, so a bad value stops before any
work: click's own FloatRange lets `nan` and `inf` through (every comparison with nan is false), and
a timeout of nan or inf means no limit at all, so every count, size and duration goes through here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from click.decorators import FC
else:
    FC = TypeVar("FC")

T = TypeVar("T")

PATH = click.Path(path_type=Path)  # any path, as a pathlib.Path; the commands check what they need


def _finite(value: float) -> None:
    if not math.isfinite(value):
        raise click.BadParameter(f"must be a finite number, not {value}")


def positive(value: float | None) -> float | None:
    """Seconds, sizes, counts: a positive, finite number (None = the option's default)."""
    if value is None:
        return None
    _finite(value)
    if value <= 0:
        raise click.BadParameter(f"must be greater than 0, not {value:g}")
    return value


def at_least_one(value: int | None) -> int | None:
    if value is not None and value < 1:
        raise click.BadParameter(f"must be at least 1, not {value}")
    return value


def not_negative(value: int | None) -> int | None:
    if value is not None and value < 0:
        raise click.BadParameter(f"must be 0 or more, not {value}")
    return value


def check(fn: Callable[[T], T]) -> Callable[[click.Context, click.Parameter, T], T]:
    """One of the checks above as a click callback (which also gets the context and parameter)."""

    def callback(ctx: click.Context, param: click.Parameter, value: T) -> T:
        return fn(value)

    return callback


def argument(name: str, help: str, **attrs: Any) -> Callable[[FC], FC]:
    """A positional argument with its help line (click lists them under "Positional arguments")."""
    return click.argument(name, help=help, **attrs)


# The sandbox's options: analyze and batch (and dataset baseline's --timeout).
def timeout(help: str) -> Callable[[FC], FC]:
    return click.option("--timeout", type=float, default=300.0, callback=check(positive), help=help)


def phases(help: str) -> Callable[[FC], FC]:
    return click.option("--phases", default="install,import", help=help)


def deps_dir(help: str) -> Callable[[FC], FC]:
    return click.option("--deps-dir", "deps_dir", type=PATH, multiple=True, help=help)


def online(help: str) -> Callable[[FC], FC]:
    return click.option("--online/--no-online", default=False, help=help)


def tracer(help: str) -> Callable[[FC], FC]:
    return click.option("--tracer", default=None, help=help)


# Options of the data commands.
def workers(help: str, default: int = 1) -> Callable[[FC], FC]:
    return click.option("--workers", type=int, default=default, callback=check(at_least_one), help=help)


def out(help: str, type: click.ParamType = PATH, required: bool = True) -> Callable[[FC], FC]:
    # No default at all when required: click counts an explicit default=None as a value given.
    return click.option("--out", type=type, required=required, help=help)


def format_(help: str, default: str) -> Callable[[FC], FC]:
    return click.option("--format", "format", default=default, help=help)


def json_out(help: str) -> Callable[[FC], FC]:
    return click.option("--json", "json_out", is_flag=True, default=False, help=help)


def optional_path(name: str, help: str) -> Callable[[FC], FC]:
    """--plots, --baseline, --archives, --cache: a path, or None when not given."""
    return click.option(name, type=PATH, default=None, help=help)


def labels_file(help: str, default: Path | None = None) -> Callable[[FC], FC]:
    if default is None:
        return click.option("--labels", type=PATH, required=True, help=help)
    return click.option("--labels", type=PATH, default=default, help=help)


def seed(help: str) -> Callable[[FC], FC]:
    return click.option("--seed", type=int, default=0, help=help)


def bootstrap(help: str) -> Callable[[FC], FC]:
    return click.option("--bootstrap", type=int, default=1000, help=help)
