"""Each exfiltration decoder on its own: what it yields from its encoding, and nothing from others."""

from __future__ import annotations

import base64
import bz2
import gzip
import io
import lzma
import tarfile
import zipfile
import zlib

import brotli
import pytest

from osptrack.sandbox.exfil.decoders import (
    Blob,
    archives,
    basen,
    compression,
    http,
    jsonesc,
    multipart,
    urlenc,
)
from osptrack.sandbox.exfil.decoders.compression import gunzip

CAP = 1 << 20
SECRET = b"[default]\naws_secret_access_key = Zk3+q/Wm9xXyBait0Value0Only0For0Tests00\n"


def children(decoder: object, data: bytes, hints: dict[str, str] | None = None) -> list[Blob]:
    return list(decoder.decode(Blob(data, (), hints or {}), CAP))  # type: ignore[attr-defined]


def datas(decoder: object, data: bytes, hints: dict[str, str] | None = None) -> list[bytes]:
    return [c.data for c in children(decoder, data, hints)]


# ---------------------------------------------------------------- url


def test_url_decoding_is_safe_on_any_escape() -> None:
    # Only the pieces with escapes are kept, decoded, one per line.
    out = datas(urlenc.DECODER, b"a=%ff%fe%00%e2%82%ac&b=x+y%2Bz&c=clear")
    assert out == [b"\xff\xfe\x00\xe2\x82\xac\nx+y+z"]  # '+' kept: it may be base64's
    assert all(c.chain == ("url",) for c in children(urlenc.DECODER, b"%41"))
    assert datas(urlenc.DECODER, b"no escapes here") == []
    assert datas(urlenc.DECODER, b"%zz%4") == []  # broken escapes stay as they are


# ---------------------------------------------------------------- json


def test_json_escapes_unicode_pairs_slashes_and_hex() -> None:
    (out,) = datas(jsonesc.DECODER, rb'{"k": "a\/b\u002bc\n\ud83d\ude00\x41\u00e9", "q": "x\\y", "plain": 1}')
    assert out == "a/b+c\n\U0001f600Aé\nx\\y".encode()
    (lone,) = datas(jsonesc.DECODER, rb"\ud800x")  # a lone surrogate does not raise
    assert lone.endswith(b"x")
    assert datas(jsonesc.DECODER, b"no backslash") == []


# ---------------------------------------------------------------- base-n


@pytest.mark.parametrize("prefix", [b"", b"x", b"xy", b"xyz", b"data="])
def test_base64_runs_decode_at_any_alignment_std_and_urlsafe(prefix: bytes) -> None:
    payload = b"\xfb\xff" + SECRET  # bytes whose std and urlsafe encodings differ
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        text = encode(payload)
        for blob in (prefix + text, prefix + text.rstrip(b"=")):
            out = datas(basen.DECODER, blob)
            assert any(payload in o for o in out), (prefix, encode)
    labels = {c.chain for c in children(basen.DECODER, base64.b64encode(SECRET))}
    assert ("base64",) in labels


def test_base64_wrapped_lines_and_concatenated_segments() -> None:
    wrapped = base64.encodebytes(SECRET * 3)  # 76-char lines, as MIME and PEM wrap
    assert b"\n" in wrapped.strip()
    assert any(SECRET * 3 in o for o in datas(basen.DECODER, wrapped))
    unwrapped = [c for c in children(basen.DECODER, b"line one\n" + wrapped) if c.chain == ("unwrap",)]
    assert unwrapped and b"\n" not in unwrapped[0].data
    two = base64.b64encode(b"ab" + SECRET[:40]) + base64.b64encode(b"c" + SECRET[40:])
    assert any(SECRET[:40] in o and SECRET[40:] in o for o in datas(basen.DECODER, two))


def test_hex_and_base32_runs() -> None:
    for text in (SECRET.hex().encode(), SECRET.hex().upper().encode(), b"z" + SECRET.hex().encode()):
        assert any(SECRET in o for o in datas(basen.DECODER, text))
    for b32 in (base64.b32encode(SECRET), base64.b32encode(SECRET).rstrip(b"=").lower()):
        assert any(SECRET in o for o in datas(basen.DECODER, b32)), b32
    assert datas(basen.DECODER, b"short QUJD deadbeef") == []


# ---------------------------------------------------------------- compression


@pytest.mark.parametrize(
    ("coding", "encode"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda d: zlib.compress(d, wbits=-15)),  # raw deflate, as some clients send it
        ("br", brotli.compress),
    ],
)
def test_content_encodings(coding: str, encode: object) -> None:
    body = encode(SECRET)  # type: ignore[operator]
    got = children(compression.DECODER, body, {"content-encoding": coding})
    assert got and got[0].data == SECRET
    assert got[0].chain == ("gzip" if coding == "x-gzip" else coding,)


def test_stacked_content_encodings_undo_the_last_first() -> None:
    body = brotli.compress(gzip.compress(SECRET))
    first = children(compression.DECODER, body, {"content-encoding": "gzip, br"})[0]
    assert first.chain == ("br",) and first.hints == {"content-encoding": "gzip"}
    assert children(compression.DECODER, first.data, dict(first.hints))[0].data == SECRET


def test_magic_sniffed_streams_anywhere_and_multi_member_gzip() -> None:
    for blob, label in (
        (b"junk before" + gzip.compress(SECRET), "gzip"),
        (zlib.compress(SECRET), "zlib"),
        (b"x" + bz2.compress(SECRET), "bzip2"),
        (b"yy" + lzma.compress(SECRET), "xz"),
    ):
        got = children(compression.DECODER, blob)
        assert any(c.data == SECRET and c.chain == (label,) for c in got), label
    assert gunzip(gzip.compress(b"one ") + gzip.compress(b"two"), CAP) == b"one two"


def test_truncated_or_damaged_streams_keep_their_start() -> None:
    big = SECRET + bytes(range(256)) * 4000
    stream = gzip.compress(big)
    cut = stream[: len(stream) // 2]
    (out,) = datas(compression.DECODER, cut)
    assert out.startswith(SECRET)
    damaged = stream[:-200] + b"\x00" * 200
    assert datas(compression.DECODER, damaged)[0].startswith(SECRET)


def test_decompression_bombs_stop_at_the_cap() -> None:
    bomb = gzip.compress(b"\0" * (64 << 20), compresslevel=1)  # 64 MiB of zeros in ~300 KiB
    assert len(bomb) < 400_000
    got = list(compression.DECODER.decode(Blob(bomb), 1 << 20))
    assert got and all(len(c.data) <= 1 << 20 for c in got)
    br_bomb = brotli.compress(b"\0" * (32 << 20), quality=1)
    (out,) = compression.DECODER.decode(Blob(br_bomb, hints={"content-encoding": "br"}), 4096)
    assert len(out.data) == 4096


# ---------------------------------------------------------------- archives


def _zip(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2])
def test_zip_members_by_local_headers_even_when_cut(method: int) -> None:
    z = _zip({"a.txt": b"hello", ".aws/credentials": SECRET}, method)
    assert SECRET in datas(archives.DECODER, z)
    # Cut before the central directory (a capture at its cap): the members are still read.
    cut = z[: z.rfind(b"PK\x01\x02")]
    assert SECRET in datas(archives.DECODER, cut)
    assert all(c.chain == ("zip",) for c in children(archives.DECODER, z))


def test_zip_with_data_descriptor_streamed_by_a_writer() -> None:
    buf = io.BytesIO()

    class Unseekable(io.RawIOBase):  # forces zipfile to write data descriptors (flag bit 3)
        def writable(self) -> bool:
            return True

        def write(self, b: object) -> int:
            return buf.write(b)  # type: ignore[arg-type]

    with zipfile.ZipFile(Unseekable(), "w", compression=zipfile.ZIP_DEFLATED) as zf:  # type: ignore[arg-type]
        zf.writestr("creds", SECRET)
    assert SECRET in datas(archives.DECODER, buf.getvalue())


def test_tar_members_embedded_or_cut() -> None:
    t = _tar({"home/.aws/credentials": SECRET, "other": b"x" * 3000})
    assert SECRET in datas(archives.DECODER, t)
    assert SECRET in datas(archives.DECODER, b"--prefix--" + t[:1500])
    assert datas(archives.DECODER, b"\0" * 2048) == []


def test_archive_member_count_is_bounded() -> None:
    z = _zip({f"f{i}": b"%d" % i for i in range(archives.MAX_MEMBERS + 50)})
    assert len(datas(archives.DECODER, z)) == archives.MAX_MEMBERS


# ---------------------------------------------------------------- multipart


def test_multipart_form_data_parts_with_their_hints() -> None:
    gz = gzip.compress(SECRET)
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="f"; filename="c.gz"\r\n'
        b"Content-Type: application/gzip\r\n\r\n" + gz + b"\r\n"
        b'--XyZ\r\nContent-Disposition: form-data; name="b"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        + base64.encodebytes(SECRET)
        + b"\r\n--XyZ--\r\n"
    )
    got = children(multipart.DECODER, body, {"content-type": 'multipart/form-data; boundary="XyZ"'})
    assert got[0].data == gz and got[0].hints["content-type"] == "application/gzip"
    assert got[0].chain == ("multipart",)
    assert any(c.data == SECRET and c.chain == ("multipart", "base64") for c in got)
    # The boundary is also found in the blob itself (a mail inside an SMTP stream).
    mail = b"DATA\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n" + body.replace(b"XyZ", b"b1")
    assert any(c.data == SECRET for c in children(multipart.DECODER, mail))


# ---------------------------------------------------------------- http


def test_http_bodies_chunked_pipelined_and_hinted() -> None:
    gz = gzip.compress(SECRET)
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(gz[i : i + 7]), gz[i : i + 7]) for i in range(0, len(gz), 7))
    stream = (
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunked
        + b"0\r\n\r\n"
        b"POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
    )
    got = children(http.DECODER, stream)
    assert [c.data for c in got] == [gz, b"hello"]
    assert got[0].hints == {"content-encoding": "gzip"} and got[0].chain == ()
    # Cut mid-body: the part that arrived is still a body.
    cut = children(http.DECODER, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 999\r\n\r\npartial")
    assert [c.data for c in cut] == [b"partial"]
    # A request h11 refuses (no Host on 1.1, bad header) still gives what follows the head.
    sloppy = children(http.DECODER, b"POST / HTTP/1.1\r\nBad Header\r\n\r\nbody=1")
    assert [c.data for c in sloppy] == [b"body=1"]
    assert datas(http.DECODER, b"CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n\x16\x03\x01") == []
    assert datas(http.DECODER, b"\x16\x03\x01\x00") == []


def test_a_post_without_content_length_keeps_its_body() -> None:
    # fuzz_exfil crash 1: h11 reads such a body as a broken second request; the body was lost.
    body = zlib.compress(SECRET)
    got = children(http.DECODER, b"POST /x?q=%ff HTTP/1.1\r\nHost: c2.example\r\n\r\n" + body)
    assert [c.data for c in got] == [body]
    # fuzz_exfil crash 3: ... and it is decoded as that request's headers say.
    (br,) = children(
        http.DECODER, b"POST / HTTP/1.1\r\nHost: h\r\nContent-Encoding: br\r\n\r\n" + brotli.compress(SECRET)
    )
    assert br.hints == {"content-encoding": "br"}
    # fuzz_exfil crash 4: a body with a blank line in it, which h11 half-read as a head.
    odd = b"x\x9c\r\xc9G\x01\n\nk\x00\x906"
    (part,) = children(http.DECODER, b"POST / HTTP/1.1\r\nHost: h\r\nContent-Encoding: deflate\r\n\r\n" + odd)
    assert part.data == odd
    after_get = children(http.DECODER, b"GET / HTTP/1.1\r\nHost: h\r\n\r\nGARBAGE \x00\xff")
    assert [c.data for c in after_get] == [b"GARBAGE \x00\xff"]


def test_a_multipart_body_without_its_content_type_names_its_boundary() -> None:
    # fuzz_exfil crash 2: a form posted without Content-Type hid a zlib part mid-body.
    body = (
        b'--fz\r\nContent-Disposition: form-data; name="f"\r\n\r\n'
        + zlib.compress(SECRET)
        + b"\r\n--fz--\r\n"
    )
    (part,) = children(multipart.DECODER, body)
    assert part.data == zlib.compress(SECRET)
    assert datas(multipart.DECODER, b"--not a boundary line\r\n") == []
