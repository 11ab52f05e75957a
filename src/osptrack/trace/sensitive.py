"""Paths a credential stealer looks for: a probe of one (stat, access, readlink, a failed open) is
recorded even when the file is absent, because looking is the behaviour.

The table is data: (category, path). `~` is any home (the sandbox's /root and /home/USER); a path
ending in `/` is a folder and covers everything under it. Categories match the dataset's
`SENSITIVE_READS` names (osptrack.dataset.features) where one exists.
"""

from __future__ import annotations

import functools
import re
from functools import lru_cache

SENSITIVE_PATHS: tuple[tuple[str, str], ...] = (
    ("system_accounts", "/etc/shadow"),
    ("system_accounts", "/etc/gshadow"),
    ("system_accounts", "/etc/sudoers"),
    ("system_accounts", "/etc/sudoers.d/"),
    ("ssh", "~/.ssh/"),
    ("ssh", "/etc/ssh/ssh_host_rsa_key"),
    ("ssh", "/etc/ssh/ssh_host_ed25519_key"),
    ("cloud", "~/.aws/"),
    ("cloud", "~/.azure/"),
    ("cloud", "~/.config/gcloud/"),
    ("cloud", "~/.kube/"),
    ("cloud", "~/.docker/config.json"),
    ("pkg_tokens", "~/.pypirc"),
    ("pkg_tokens", "~/.netrc"),
    ("pkg_tokens", "~/.git-credentials"),
    ("pkg_tokens", "~/.gem/credentials"),
    ("pkg_tokens", "~/.cargo/credentials"),
    ("pkg_tokens", "~/.cargo/credentials.toml"),
    ("pkg_tokens", "~/.composer/auth.json"),
    ("pkg_tokens", "~/.config/gh/"),
    ("browser", "~/.mozilla/firefox/"),
    ("browser", "~/.config/google-chrome/"),
    ("browser", "~/.config/chromium/"),
    ("browser", "~/.config/BraveSoftware/"),
    ("browser", "~/.config/microsoft-edge/"),
    ("browser", "~/.config/opera/"),
    ("wallet", "~/.bitcoin/"),
    ("wallet", "~/.electrum/"),
    ("wallet", "~/.ethereum/"),
    ("wallet", "~/.monero/"),
    ("wallet", "~/.config/Exodus/"),
    ("wallet", "~/.config/Electrum/"),
    ("wallet", "~/.config/atomic/"),
    ("wallet", "~/.config/Ledger Live/"),
    ("wallet", "~/.config/solana/"),
    ("wallet", "~/.local/share/io.parity.ethereum/"),
    ("env_history", "~/.bash_history"),
    ("env_history", "~/.zsh_history"),
    ("env_history", "~/.env"),
    ("gpg", "~/.gnupg/"),
)

_HOME = r"(?:/root|/home/[^/]+)"


@functools.cache  # compiled with the first path looked up, in the phase (a few ms of start-up)
def _compile() -> re.Pattern[str]:
    parts = []
    for i, (_, path) in enumerate(SENSITIVE_PATHS):
        folder = path.rstrip("/")
        body = (_HOME + re.escape(folder[1:])) if folder.startswith("~") else re.escape(folder)
        # a folder itself (its stat is the probe) or anything under it; a file exactly
        parts.append(f"(?P<p{i}>{body}(?:/.*)?)" if path.endswith("/") else f"(?P<p{i}>{body})")
    return re.compile("^(?:" + "|".join(parts) + ")$", re.S)


@lru_cache(maxsize=4096)
def category(path: str) -> str | None:
    """The category of a sensitive path, or None."""
    m = _compile().match(path)
    if m is None or m.lastgroup is None:
        return None
    return SENSITIVE_PATHS[int(m.lastgroup[1:])][0]
