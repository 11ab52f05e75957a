"""The CLI framework's cost: `osptrack analyze` loads click and its own group only, never typer or
pydantic (typer built a pydantic TypeAdapter per parameter, ~0.25 s a run); every command's help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from osptrack.cli import COMMANDS, app

GROUP_MODULES = sorted({spec.partition(":")[0] for spec in COMMANDS.values()})


def loaded_after(argv: list[str], names: list[str]) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run the console script's main() on argv in a fresh interpreter; which of `names` it imported."""
    code = (
        "import sys\n"
        f"sys.argv = ['osptrack', *{argv!r}]\n"
        "from osptrack.entry import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print(sorted(n for n in {names!r} if n in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    return proc, proc.stdout.strip().splitlines()[-1:]


def test_analyze_loads_neither_typer_nor_pydantic_nor_other_groups(tmp_path: Path) -> None:
    # A real `analyze` as far as the missing archive (parsed, osptrack.run imported, command run).
    archive = str(tmp_path / "missing-1.0-py3-none-any.whl")
    names = ["typer", "pydantic", "pydantic_core", "click", *GROUP_MODULES]
    proc, last = loaded_after(["analyze", "pypi", archive], names)
    assert "archive not found" in proc.stderr, proc.stderr
    assert last == [repr(sorted(["click", "osptrack.cli.analyze"]))], proc.stdout


def test_help_loads_every_group_but_neither_typer_nor_rich() -> None:
    # The check above can fail: listing the commands for help does import every group's module;
    # rich loads at a command's first print, which help has none of.
    proc, last = loaded_after(["--help"], ["typer", "pydantic", "rich", *GROUP_MODULES])
    assert "Usage:" in proc.stdout
    assert last == [repr(GROUP_MODULES)], proc.stdout


def test_a_bare_group_names_its_commands_without_importing_any() -> None:
    ctx = click.Context(app)
    assert app.list_commands(ctx) == list(COMMANDS)  # help lists them in this order


def all_commands() -> list[list[str]]:
    ctx = click.Context(app)
    found: list[list[str]] = []
    for name in app.list_commands(ctx):
        command = app.get_command(ctx, name)
        found.append([name])
        if isinstance(command, click.Group):
            found.extend([name, sub] for sub in command.list_commands(ctx))
    return found


@pytest.mark.parametrize("path", all_commands(), ids=" ".join)
def test_every_command_has_help_with_its_options_and_defaults(path: list[str]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], prog_name="osptrack", terminal_width=200)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: osptrack {' '.join(path)} ")
    command = app
    for name in path:
        command = command.get_command(click.Context(command), name)  # type: ignore[assignment, union-attr]
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert param.opts[0] in result.output, param.opts[0]
            if param.help:
                assert param.help.split()[0] in result.output
        elif isinstance(param, click.Argument):
            assert param.help, f"{path} {param.name}: an argument without help"
            assert param.make_metavar(click.Context(command)) in result.output
    if isinstance(command, click.Group):
        assert "Commands:" in result.output


def test_defaults_and_both_flag_spellings_show_in_help() -> None:
    text = CliRunner().invoke(app, ["batch", "--help"], terminal_width=200).output
    assert "[default: 300.0]" in text and "--online / --no-online" in text
    assert "--rerun / --no-rerun" in text and "--analyzer" not in text  # hidden


def test_short_help_is_the_whole_first_sentence() -> None:
    text = CliRunner().invoke(app, ["--help"], terminal_width=200).output
    assert "execute one package in the sandbox; record what it does." in text
