"""The README's two commands work from a fresh clone: neither may depend on ../shared."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from osptrack.target import parse_target

README = Path(__file__).resolve().parents[2] / "README.md"


def two_commands() -> list[str]:
    text = README.read_text()
    section = text.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None
    return [line for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]


def test_neither_command_reads_shared_data() -> None:
    commands = two_commands()
    assert len(commands) == 2
    assert all("shared" not in c for c in commands), commands
    assert commands[1] == "bash scripts/test.sh"


def test_the_first_command_names_a_pinned_registry_package() -> None:
    analyze = two_commands()[0].split("&&")[-1]
    argv = shlex.split(analyze)
    assert argv[:2] == [".venv/bin/osptrack", "analyze"] and "--online" in argv
    ref = parse_target(argv[2], argv[3], None)
    assert ref.archive is None and ref.version  # from the registry, at one exact version
