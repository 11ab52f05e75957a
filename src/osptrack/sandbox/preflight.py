"""Host prerequisites of the sandbox, checked before a run so failures are one clear line."""

from __future__ import annotations

import os
import shutil

from osptrack.errors import ToolchainMissing

# (binary, Debian package)
REQUIRED = (("bwrap", "bubblewrap"), ("strace", "strace"), ("nft", "nftables"), ("ip", "iproute2"))


def sandbox_problems() -> list[tuple[str, str]]:
    problems = [
        (binary, f"apt-get install -y {package}") for binary, package in REQUIRED if not shutil.which(binary)
    ]
    if os.geteuid() != 0:
        problems.append(
            ("root", "run osptrack as root: it creates network namespaces, cgroups and a tmpfs home")
        )
    return problems


def check_sandbox() -> None:
    problems = sandbox_problems()
    if problems:
        name, fix = problems[0]
        raise ToolchainMissing(f"sandbox prerequisite {name!r} is missing; {fix}")
