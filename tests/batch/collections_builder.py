"""Build tiny malware-collection trees in the published layouts, holding harmless packages.

DataDog samples are zips encrypted with the password `infected` (AES or ZipCrypto, as in the real
dataset); the zip holds the package's unpacked tree, or its registry archive.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

import pyzipper

from builders import targz_bytes
from processes import alive as alive  # re-exported: the batch tests import it from here

PASSWORD = b"infected"


def targz(members: dict[str, str]) -> bytes:
    # Reproducible (fixed gzip and member mtimes): tests compare archives built seconds apart.
    return targz_bytes(dict(members))


def npm_tgz(name: str, version: str) -> bytes:
    return targz(
        {
            "package/package.json": json.dumps({"name": name, "version": version, "main": "index.js"}),
            "package/index.js": "module.exports = 1;\n",
        }
    )


def sdist(name: str, version: str, setup_py: str | None = None) -> bytes:
    top = f"{name}-{version}"
    return targz(
        {
            f"{top}/PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
            f"{top}/setup.py": setup_py
            or f"from setuptools import setup\nsetup(name={name!r}, version={version!r})\n",
        }
    )


def encrypted_zip(path: Path, members: dict[str, bytes], aes: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if aes:
        with pyzipper.AESZipFile(
            path, "w", compression=pyzipper.ZIP_DEFLATED, encryption=pyzipper.WZ_AES
        ) as zf:
            zf.setpassword(PASSWORD)
            # Not reproducible whatever the dates (AES salts are random); the members inside are.
            for name, data in members.items():
                zf.writestr(name, data)
    else:
        path.write_bytes(zipcrypto_zip(members, PASSWORD))
    return path


def datadog_collection(root: Path) -> dict[str, Path]:
    """Three samples: an npm scoped package as an unpacked tree (AES), a PyPI sdist tree
    (ZipCrypto-or-plain per pyzipper support), and an npm package shipped as its tgz."""
    samples = root / "samples"
    made = {}
    made["@evil/pkg"] = encrypted_zip(
        samples / "npm" / "malicious_intent" / "@evil@pkg" / "1.0.0" / "2024-01-02-@evil_pkg-v1.0.0.zip",
        {
            "2024-01-02-@evil_pkg-v1.0.0/package/package.json": json.dumps(
                {"name": "@evil/pkg", "version": "1.0.0"}
            ).encode(),
            "2024-01-02-@evil_pkg-v1.0.0/package/index.js": b"module.exports = 1;\n",
        },
    )
    made["bad-py"] = encrypted_zip(
        samples / "pypi" / "compromised_lib" / "bad-py" / "0.1" / "2024-01-03-bad-py-v0.1.zip",
        {
            "2024-01-03-bad-py-v0.1/bad-py-0.1/setup.py": b"from setuptools import setup\nsetup(name='bad-py')\n",
            "2024-01-03-bad-py-v0.1/bad-py-0.1/PKG-INFO": b"Metadata-Version: 2.1\nName: bad-py\nVersion: 0.1\n",
        },
        aes=False,
    )
    made["tgz-only"] = encrypted_zip(
        samples / "npm" / "malicious_intent" / "tgz-only" / "2.0.0" / "2024-01-04-tgz-only-v2.0.0.zip",
        {"tgz-only-2.0.0.tgz": npm_tgz("tgz-only", "2.0.0")},
    )
    (samples / "npm" / "manifest.json").write_text(json.dumps({"@evil/pkg": ["1.0.0"], "tgz-only": None}))
    return made


def backstabber_collection(root: Path) -> None:
    for eco, name, version, filename, data in [
        ("npm", "bk-one", "1.0.0", "bk-one-1.0.0.tgz", npm_tgz("bk-one", "1.0.0")),
        ("pypi", "bk-two", "2.0", "bk-two-2.0.tar.gz", sdist("bk-two", "2.0")),
    ]:
        folder = root / "samples" / eco / name / version
        folder.mkdir(parents=True)
        (folder / filename).write_bytes(data)


def malregistry_collection(root: Path) -> None:
    for name, version in [("mal-one", "0.0.1"), ("Mal_Two", "1.0")]:
        folder = root / name / version
        folder.mkdir(parents=True)
        (folder / f"{name}-{version}.tar.gz").write_bytes(sdist(name, version))
    # As in the real registry: a version folder that is not a version.
    odd = root / "odd" / "odd name-1"
    odd.mkdir(parents=True)
    (odd / "odd name-1.tar.gz").write_bytes(sdist("odd", "1"))


def _zipcrypto_stream(password: bytes):  # type: ignore[no-untyped-def]
    """Traditional PKWARE encryption (APPNOTE 6.1), which pyzipper reads but cannot write."""
    keys = [0x12345678, 0x23456789, 0x34567890]

    def crc(value: int, byte: int) -> int:
        return (value >> 8) ^ _CRC_TABLE[(value ^ byte) & 0xFF]

    def update(byte: int) -> None:
        keys[0] = crc(keys[0], byte)
        keys[1] = ((keys[1] + (keys[0] & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
        keys[2] = crc(keys[2], keys[1] >> 24)

    for b in password:
        update(b)

    def encrypt(data: bytes) -> bytes:
        out = bytearray()
        for b in data:
            temp = (keys[2] | 2) & 0xFFFF
            out.append(b ^ (((temp * (temp ^ 1)) >> 8) & 0xFF))
            update(b)
        return bytes(out)

    return encrypt


def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc_table()


def zipcrypto_zip(members: dict[str, bytes], password: bytes) -> bytes:
    """A stored (uncompressed) zip whose members are ZipCrypto-encrypted."""
    body = bytearray()
    central = bytearray()
    for name, data in members.items():
        raw_name = name.encode()
        crc32 = zlib.crc32(data)
        encrypt = _zipcrypto_stream(password)
        header = os.urandom(11) + bytes([crc32 >> 24])
        payload = encrypt(header) + encrypt(data)
        offset = len(body)
        fields = (20, 0x1, 0, 0, 0, crc32, len(payload), len(data), len(raw_name), 0)
        body += struct.pack("<IHHHHHIIIHH", 0x04034B50, *fields) + raw_name + payload
        central += (
            struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, *fields, 0, 0, 0, 0o100644 << 16, offset)
            + raw_name
        )
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), len(body), 0)
    return bytes(body + central + end)
