"""click's classes as osptrack's commands use them: a root group that imports a command's module
only when that command is named, groups that list commands in the order they are declared, and
commands whose one-line summary is their docstring's first paragraph, whole.
"""

from __future__ import annotations

import importlib
import inspect
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.console import Console

# Inherited by every sub-context: -h works everywhere, and defaults show in every help.
CONTEXT_SETTINGS: dict[str, Any] = {
    "help_option_names": ["-h", "--help"],
    "show_default": True,
    "max_content_width": 110,  # wide terminals get one line an option, as typer gave
}


def first_paragraph(help: str | None) -> str | None:
    """A docstring's first paragraph on one line: the summary `osptrack --help` lists."""
    if not help:
        return None
    return " ".join(inspect.cleandoc(help).split("\n\n", 1)[0].split())


class Command(click.Command):
    """click cuts a command's summary at about 45 characters; osptrack's are one sentence, kept whole."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.short_help is None:
            self.short_help = first_paragraph(self.help)


class Group(click.Group):
    """A sub-command group (`dataset`, `labels`, `model`): commands listed in declaration order.

    A bare group is a usage error like any other (one line, exit 2; cli.main), not a help page.
    """

    command_class = Command

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("no_args_is_help", False)
        super().__init__(*args, **kwargs)
        if self.short_help is None:
            self.short_help = first_paragraph(self.help)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


Group.group_class = Group


class LazyGroup(Group):
    """The root: `lazy` maps each command name to "module:attribute" of its click command.

    `osptrack analyze ...` imports osptrack.cli.analyze alone, not batch's progress bars or the
    dataset commands; help and the "missing command" message list the names without importing
    anything, and help imports each module for its summary line.
    """

    def __init__(self, *args: Any, lazy: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*self.lazy, *(name for name in self.commands if name not in self.lazy)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            module, _, attribute = self.lazy[cmd_name].partition(":")
            command = getattr(importlib.import_module(module), attribute)
            if not isinstance(command, click.Command):
                raise TypeError(f"{self.lazy[cmd_name]} is not a click command")
            self.add_command(command, cmd_name)
        return self.commands.get(cmd_name)


class LazyConsole:
    """rich's Console, made (and rich imported) at a command's first print: `osptrack --help`,
    which imports every command module, then loads no rich at all."""

    def __init__(self, **kwargs: Any) -> None:
        self._kwargs = kwargs
        self._console: Console | None = None

    def get(self) -> Console:
        """The Console itself (for rich's own classes that take one, e.g. Progress)."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._kwargs)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)
