"""The `osptrack` console script: answers `--version` before importing click and rich (outside
the cli package, whose __init__ imports click).

Scripts probe for osptrack with `osptrack --version`; importing the CLI framework costs several
times more than the answer, so everything else goes on to `osptrack.cli.main`.
"""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        from osptrack import __version__

        print(f"osptrack {__version__}")
        return
    from osptrack.cli import main as cli_main

    cli_main()
