"""Harmless second stages the fake HTTP(S) servers hand out, each proving its own execution.

A package that downloads and runs a payload gets one of these instead. Every stage does exactly
one thing: append a line to the run's *marker* file (a path unique per run, e.g.
`/tmp/.s3f9c1a2b7d4e`), then exit 0. That write shows up in events.jsonl as a file write of the
marker path by the process that ran the stage, and run.py sets `second_stage_executed` from it.

The ELF stub is about 170 bytes of x86-64 Linux, built here byte by byte (no assembler, no toolchain):

    ELF64 header (64 bytes)   e_type EXEC, e_machine x86-64, e_entry 0x400078, one program header
    program header (56 bytes) PT_LOAD, offset 0, vaddr 0x400000, R+X, the whole file
    code at 0x78 (33 bytes):
        48 8d 3d 1a 00 00 00    lea  rdi, [rip+26]       ; -> the marker path after the code
        be 41 04 00 00          mov  esi, 0x441          ; O_WRONLY|O_CREAT|O_APPEND
        ba a4 01 00 00          mov  edx, 0644
        b8 02 00 00 00          mov  eax, 2              ; open(2)
        0f 05                   syscall
        31 ff                   xor  edi, edi
        b8 3c 00 00 00          mov  eax, 60             ; exit(0)
        0f 05                   syscall
    the marker path, NUL-terminated

It only creates the marker (open with O_CREAT, nothing written) and exits. The PE stub is the
smallest well-formed PE32 console image (one .text section whose entry point is `xor eax, eax;
ret`, i.e. exit code 0); nothing here can run it, it is only there so a Windows-minded fetcher
receives a plausible `MZ` executable.
"""

from __future__ import annotations

import secrets
import struct
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the fake network starts before the first phase; msgspec loads after
    from osptrack.trace.events import Event

SCRIPT_SUFFIXES = {
    ".sh": "sh",
    ".bash": "sh",
    ".py": "py",
    ".ps1": "ps1",
    ".js": "js",
    ".rb": "rb",
    ".php": "php",
}
BINARY_SUFFIXES = {
    ".exe": "pe",
    ".dll": "pe",
    ".scr": "pe",
    ".elf": "elf",
    ".bin": "elf",
    ".so": "elf",
    ".run": "elf",
}
CONTENT_TYPES = {
    "sh": "text/x-shellscript",
    "py": "text/x-python",
    "ps1": "text/plain",
    "js": "application/javascript",
    "rb": "text/x-ruby",
    "php": "text/x-php",
    "elf": "application/octet-stream",
    "pe": "application/x-msdownload",
}


def new_marker() -> str:
    """A per-run marker path: /tmp, like a dropper's own scratch file."""
    return f"/tmp/.s{secrets.token_hex(6)}"


def script(lang: str, marker: str) -> bytes:
    """A script in `lang` that appends its language's name to `marker` and exits 0."""
    m = marker
    body = {
        "sh": f"#!/bin/sh\necho sh >> '{m}'\nexit 0\n",
        "py": f"#!/usr/bin/env python3\nwith open({m!r}, 'a') as f:\n    f.write('py\\n')\n",
        "ps1": f'Add-Content -Path "{m}" -Value "ps1"\nexit 0\n',
        "js": f'require("fs").appendFileSync({m!r}, "js\\n");\n',
        "rb": f'File.open({m!r}, "a") {{ |f| f.puts "rb" }}\n',
        "php": f'<?php file_put_contents({m!r}, "php\\n", FILE_APPEND);\n',
    }[lang]
    return body.encode()


def elf_stub(marker: str) -> bytes:
    """A static x86-64 ELF executable: open(marker, O_WRONLY|O_CREAT|O_APPEND, 0644); exit(0)."""
    base, header_size = 0x400000, 64 + 56
    code = (
        bytes.fromhex("488d3d1a000000")  # lea rdi, [rip+26]
        + bytes.fromhex("be41040000")  # mov esi, 0x441
        + bytes.fromhex("baa4010000")  # mov edx, 0o644
        + bytes.fromhex("b802000000")  # mov eax, 2 (open)
        + bytes.fromhex("0f05")  # syscall
        + bytes.fromhex("31ff")  # xor edi, edi
        + bytes.fromhex("b83c000000")  # mov eax, 60 (exit)
        + bytes.fromhex("0f05")  # syscall
    )
    assert len(code) == 33  # the lea's displacement (26) is len(code) - 7
    payload = code + marker.encode() + b"\0"
    size = header_size + len(payload)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # 64-bit, little-endian, version 1, SysV
    ehdr = ident + struct.pack(
        "<HHIQQQIHHHHHH",
        2,  # e_type: ET_EXEC
        0x3E,  # e_machine: x86-64
        1,  # e_version
        base + header_size,  # e_entry
        64,  # e_phoff
        0,  # e_shoff: no section headers
        0,  # e_flags
        64,  # e_ehsize
        56,  # e_phentsize
        1,  # e_phnum
        0,  # e_shentsize
        0,  # e_shnum
        0,  # e_shstrndx
    )
    phdr = struct.pack(
        "<IIQQQQQQ",
        1,  # p_type: PT_LOAD
        5,  # p_flags: R+X
        0,  # p_offset
        base,  # p_vaddr
        base,  # p_paddr
        size,  # p_filesz
        size,  # p_memsz
        0x1000,  # p_align
    )
    return ehdr + phdr + payload


def pe_stub() -> bytes:
    """A minimal PE32 console executable whose entry point returns 0."""
    dos = b"MZ" + bytes(0x3A) + struct.pack("<I", 0x40)  # e_lfanew -> 0x40
    coff = struct.pack("<HHIIIHH", 0x14C, 1, 0, 0, 0, 0xE0, 0x0102)  # i386, 1 section, EXEC|32BIT
    optional = struct.pack(
        "<HBBIIIIIIIIIHHHHHHIIIIHHIIIIII",
        0x10B, 0, 0, 0x200, 0, 0, 0x1000, 0x1000, 0x2000,  # magic, linker, sizes, entry, bases
        0x400000, 0x1000, 0x200,  # image base, section and file alignment
        4, 0, 0, 0, 4, 0, 0,  # OS, image, subsystem versions, Win32VersionValue
        0x2000, 0x200, 0, 3, 0,  # SizeOfImage, SizeOfHeaders, CheckSum, Subsystem (console), DllChar.
        0x100000, 0x1000, 0x100000, 0x1000, 0, 16,  # stack/heap reserve+commit, LoaderFlags, #dirs
    ) + bytes(16 * 8)  # fmt: skip
    section = b".text\0\0\0" + struct.pack("<IIIIIIHHI", 3, 0x1000, 0x200, 0x200, 0, 0, 0, 0, 0x60000020)
    headers = dos + b"PE\0\0" + coff + optional + section
    code = b"\x31\xc0\xc3"  # xor eax, eax; ret
    return headers.ljust(0x200, b"\0") + code.ljust(0x200, b"\0")


def second_stage_info(events: Iterable[Event], marker: str) -> dict[str, Any]:
    """run.json's `second_stage_executed` and the writes behind it: a successful write-open of the
    run's marker path is a served second stage running (nothing else knows that path)."""
    writes = [
        {"phase": e.phase, "pid": e.pid, "exe": e.exe, "t": e.t}
        for e in events
        if e.kind == "file" and e.path == marker and e.op in ("write", "create") and e.errno is None
    ]
    return {"second_stage_executed": bool(writes), "second_stage": {"marker": marker, "writes": writes[:100]}}
