"""Ruby's Marshal 4.8, write-only, for the few types a Gem::Specification dump holds.

`gem install` (RubyGems 3.3) resolves with the compact index but then loads each chosen gem's
`quick/Marshal.4.8/<name>-<version>.gemspec.rz`: a deflated Marshal of a Gem::Specification,
whose `_dump` is itself a Marshal of a 19-element array (Specification#_dump/_load). osptrack
writes it from metadata read on the host; nothing of Ruby runs there.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Sym:
    name: str


@dataclass(frozen=True)
class Obj:
    """A plain object: class name and instance variables (`@name` -> value)."""

    cls: str
    ivars: tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class UserMarshal:
    """An object with marshal_dump/marshal_load (Gem::Version, Gem::Requirement)."""

    cls: str
    data: Any


@dataclass(frozen=True)
class UserDump:
    """An object with _dump/_load (Gem::Specification): its class and the dumped bytes."""

    cls: str
    data: bytes


class _Writer:
    def __init__(self) -> None:
        self.out = bytearray(b"\x04\x08")
        self.symbols: dict[str, int] = {}

    def long(self, n: int) -> None:
        if n == 0:
            self.out.append(0)
        elif 0 < n < 123:
            self.out.append(n + 5)
        elif -124 < n < 0:
            self.out.append((n - 5) & 0xFF)
        else:
            raw = struct.pack("<q", n)
            size = 8
            fill = 0xFF if n < 0 else 0x00
            while size > 1 and raw[size - 1] == fill:
                size -= 1
            if size > 4:
                raise ValueError(f"integer {n} is too large for a Marshal fixnum here")
            self.out.append(size if n > 0 else 256 - size)
            self.out += raw[:size]

    def bytes_(self, data: bytes) -> None:
        self.long(len(data))
        self.out += data

    def symbol(self, name: str) -> None:
        if name in self.symbols:
            self.out += b";"
            self.long(self.symbols[name])
            return
        self.symbols[name] = len(self.symbols)
        self.out += b":"
        self.bytes_(name.encode())

    def value(self, v: Any) -> None:
        if v is None:
            self.out += b"0"
        elif v is True:
            self.out += b"T"
        elif v is False:
            self.out += b"F"
        elif isinstance(v, int):
            self.out += b"i"
            self.long(v)
        elif isinstance(v, str):  # a UTF-8 String: the E ivar says so
            self.out += b'I"'
            self.bytes_(v.encode())
            self.long(1)
            self.symbol("E")
            self.out += b"T"
        elif isinstance(v, Sym):
            self.symbol(v.name)
        elif isinstance(v, list | tuple):
            self.out += b"["
            self.long(len(v))
            for item in v:
                self.value(item)
        elif isinstance(v, dict):
            self.out += b"{"
            self.long(len(v))
            for key, item in v.items():
                self.value(key)
                self.value(item)
        elif isinstance(v, Obj):
            self.out += b"o"
            self.symbol(v.cls)
            self.long(len(v.ivars))
            for name, item in v.ivars:
                self.symbol(name)
                self.value(item)
        elif isinstance(v, UserMarshal):
            self.out += b"U"
            self.symbol(v.cls)
            self.value(v.data)
        elif isinstance(v, UserDump):
            self.out += b"u"
            self.symbol(v.cls)
            self.bytes_(v.data)
        else:
            raise TypeError(f"no Marshal form for {type(v).__name__}")


def dumps(value: Any) -> bytes:
    w = _Writer()
    w.value(value)
    return bytes(w.out)


def version(text: str) -> UserMarshal:
    return UserMarshal("Gem::Version", [text])


def requirement(pairs: list[tuple[str, str]]) -> UserMarshal:
    return UserMarshal("Gem::Requirement", [[[op, version(v)] for op, v in pairs or [(">=", "0")]]])


def gemspec_rz(
    name: str,
    ver: str,
    platform: str,
    dependencies: list[tuple[str, list[tuple[str, str]]]],
    ruby: list[tuple[str, str]],
    rubygems: list[tuple[str, str]],
    summary: str = "",
    authors: list[str] | None = None,
    licenses: list[str] | None = None,
) -> bytes:
    """`quick/Marshal.4.8/<name>-<version>.gemspec.rz`: zlib(Marshal(Gem::Specification))."""
    deps = [
        Obj(
            "Gem::Dependency",
            (
                ("@name", dep),
                ("@requirement", requirement(reqs)),
                ("@type", Sym("runtime")),
                ("@prerelease", False),
            ),
        )  # fmt: skip
        for dep, reqs in dependencies
    ]
    fields = [
        "3.3.15", 4, name, version(ver), None, summary or name, requirement(ruby), requirement(rubygems),
        platform, deps, "", None, authors or [], summary, None, True, platform, licenses or [], {},
    ]  # fmt: skip
    return zlib.compress(dumps(UserDump("Gem::Specification", dumps(fields))))
