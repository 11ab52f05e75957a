"""Honeytokens: fake credentials, unique per run, planted where stealers look for them.

A value found in a captured network payload proves exfiltration, because nothing but the
package could have sent it. The values look real enough for format checks (AKIA..., ghp_...,
npm_...) but authenticate nowhere.
"""

from __future__ import annotations

import base64
import os
import secrets
import string
from dataclasses import dataclass, field
from pathlib import Path

SANDBOX_HOME = "/root"  # the default; a run plants them in its persona's home (/home/<user>)
_UPPER_DIGITS = string.ascii_uppercase + string.digits
_ALNUM = string.ascii_letters + string.digits


def _rand(alphabet: str, n: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


@dataclass(frozen=True)
class Honeytoken:
    kind: str
    value: str
    planted: tuple[str, ...]  # "env:NAME" or a sandbox path

    def as_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "value": self.value, "planted": list(self.planted)}


@dataclass(frozen=True)
class Baits:
    tokens: tuple[Honeytoken, ...]
    files: dict[str, str] = field(default_factory=dict)  # path relative to home -> content
    env: dict[str, str] = field(default_factory=dict)
    home: str = SANDBOX_HOME

    @property
    def paths(self) -> tuple[str, ...]:
        """Sandbox paths of the bait files, for bait-read detection."""
        return tuple(f"{self.home}/{rel}" for rel in self.files)

    def values(self) -> dict[str, str]:
        return {t.kind: t.value for t in self.tokens}

    def plant(self, home: Path, owner_uid: int, owner_gid: int) -> None:
        """Write the bait files into the run's home (host side), owned by the sandbox user."""
        for rel, content in self.files.items():
            path = home / rel
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chown(path.parent, owner_uid, owner_gid)
            path.write_text(content)
            path.chmod(0o600)
            os.chown(path, owner_uid, owner_gid)


def make_baits(home: str = SANDBOX_HOME) -> Baits:
    aws_id = "AKIA" + _rand(_UPPER_DIGITS, 16)
    aws_secret = _rand(_ALNUM + "+/", 40)
    ssh_marker = _rand(_ALNUM, 48)
    npm_token = "npm_" + _rand(_ALNUM, 36)
    pypi_token = "pypi-AgEIcHlwaS5vcmc" + _rand(_ALNUM, 48)
    git_token = "ghp_" + _rand(_ALNUM, 36)
    github_token = "ghp_" + _rand(_ALNUM, 36)
    docker_token = "dckr_pat_" + _rand(_ALNUM + "-_", 27)
    user = home.rstrip("/").rsplit("/", 1)[-1] or "root"
    docker_auth = base64.b64encode(f"{user}:{docker_token}".encode()).decode()
    # The key body is random base64 around a marker; only the marker needs to be matched.
    body = base64.b64encode(secrets.token_bytes(600)).decode()
    body = body[:100] + ssh_marker + body[100:]
    key_lines = [body[i : i + 70] for i in range(0, len(body), 70)]
    files = {
        ".aws/credentials": (
            f"[default]\naws_access_key_id = {aws_id}\naws_secret_access_key = {aws_secret}\n"
        ),
        ".ssh/id_rsa": "-----BEGIN OPENSSH PRIVATE KEY-----\n"
        + "\n".join(key_lines)
        + "\n-----END OPENSSH PRIVATE KEY-----\n",
        ".npmrc": f"//registry.npmjs.org/:_authToken={npm_token}\n",
        ".pypirc": f"[pypi]\nusername = __token__\npassword = {pypi_token}\n",
        ".git-credentials": f"https://{user}:{git_token}@github.com\n",
        ".docker/config.json": '{\n\t"auths": {\n\t\t"https://index.docker.io/v1/": {\n\t\t\t"auth": "'
        + docker_auth
        + '"\n\t\t}\n\t}\n}\n',
    }
    env = {"AWS_ACCESS_KEY_ID": aws_id, "AWS_SECRET_ACCESS_KEY": aws_secret, "GITHUB_TOKEN": github_token}
    tokens = (
        Honeytoken("aws_access_key_id", aws_id, ("env:AWS_ACCESS_KEY_ID", f"{home}/.aws/credentials")),
        Honeytoken(
            "aws_secret_access_key", aws_secret, ("env:AWS_SECRET_ACCESS_KEY", f"{home}/.aws/credentials")
        ),
        Honeytoken("ssh_private_key", ssh_marker, (f"{home}/.ssh/id_rsa",)),
        Honeytoken("npm_token", npm_token, (f"{home}/.npmrc",)),
        Honeytoken("pypi_token", pypi_token, (f"{home}/.pypirc",)),
        Honeytoken("git_credentials", git_token, (f"{home}/.git-credentials",)),
        Honeytoken("github_token", github_token, ("env:GITHUB_TOKEN",)),
        Honeytoken("docker_token", docker_token, (f"{home}/.docker/config.json",)),
    )
    return Baits(tokens=tokens, files=files, env=env, home=home)
