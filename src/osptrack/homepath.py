"""Paths in the sandbox's home, which is the run's persona's (/home/<user>) and varies per run.

Ecosystems and rules write such paths `~/...` (commands, environments, working folders, trusted
executables); run.py expands them with `expand_home`, and rules compare recorded paths with
`home_relative`, which writes any user's home (or the old /root) as `~`.
"""

from __future__ import annotations

import re

_TILDE = re.compile(r"(^|[:=])~(?=/|$|:)")
_HOME_PREFIX = re.compile(r"^(?:/root|/home/[^/]+)(?=/|$)")


def expand_home(value: str, home: str) -> str:
    """`~/x` (also after `:` or `=`, as in PATH lists) -> `<home>/x`."""
    return _TILDE.sub(lambda m: m.group(1) + home, value)


def home_relative(path: str) -> str:
    """A recorded sandbox path with the home written `~` (any user's), to compare with `~/...`."""
    return _HOME_PREFIX.sub("~", path, count=1)
