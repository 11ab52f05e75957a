"""zip and tar bodies: the members' contents, each capped, at most MAX_MEMBERS per archive.

zip is read by walking its local file headers rather than with `zipfile`: zipfile needs the
central directory at the end, which a capture cut at its cap does not have. Encrypted
members are skipped (the password is in the package, not here). tar goes through `tarfile`
(ustar and GNU headers, pax names), stopping at the first damaged header.
"""

from __future__ import annotations

import io
import struct
import tarfile
from collections.abc import Iterator

from osptrack.sandbox.exfil.decoders import MAX_MEMBERS, MAX_SNIFFS, Blob
from osptrack.sandbox.exfil.decoders.compression import CODINGS, _zlib

ZIP_LOCAL = b"PK\x03\x04"
_ZIP_HEADER = struct.Struct("<4sHHHHHIIIHH")
TAR_MAGIC_AT = 257


def zip_members(data: bytes, cap: int) -> Iterator[bytes]:
    pos = data.find(ZIP_LOCAL)
    members = 0
    budget = cap
    while pos >= 0 and members < MAX_MEMBERS and budget > 0:
        if pos + _ZIP_HEADER.size > len(data):
            return
        _, _, flags, method, _, _, _, csize, _, nlen, xlen = _ZIP_HEADER.unpack_from(data, pos)
        start = pos + _ZIP_HEADER.size + nlen + xlen
        members += 1
        body = b""
        if not flags & 1:  # bit 0: encrypted
            # With a data descriptor (bit 3) the sizes come after the data: read to the next header.
            end = start + csize if csize and not flags & 8 else data.find(ZIP_LOCAL, start)
            raw = data[start : end if end >= 0 else len(data)]
            if method == 0:
                body = raw[:budget]
            elif method == 8:
                body = _zlib(data[start:] if flags & 8 else raw, -15, budget)[0]
            elif method == 12:
                body = CODINGS["bzip2"](raw, budget)
            elif method == 14:
                body = CODINGS["xz"](raw[4:], budget)  # zip's lzma has its own 4-byte header; best effort
        if body:
            budget -= len(body)
            yield body
        pos = data.find(ZIP_LOCAL, max(start, pos + 4))


def _is_tar(data: bytes, at: int) -> bool:
    return data[at + TAR_MAGIC_AT : at + TAR_MAGIC_AT + 5] == b"ustar"


def tar_members(data: bytes, cap: int) -> Iterator[bytes]:
    budget = cap
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
            for _ in range(MAX_MEMBERS):
                member = tf.next()
                if member is None or budget <= 0:
                    return
                if not member.isfile():
                    continue
                fh = tf.extractfile(member)
                if fh is None:
                    continue
                body = fh.read(budget)
                if body:
                    budget -= len(body)
                    yield body
    except (tarfile.TarError, EOFError, OSError, ValueError):
        return  # damaged or cut off: keep what came before


class ArchiveDecoder:
    name = "archives"

    def decode(self, blob: Blob, cap: int) -> Iterator[Blob]:
        data = blob.data
        if ZIP_LOCAL in data:
            for body in zip_members(data, cap):
                yield blob.child(body, "zip", text=False)
        # A tar starts with its first header; find ones embedded after other bytes too.
        pos = data.find(b"ustar", TAR_MAGIC_AT)
        for _ in range(MAX_SNIFFS):
            if pos < 0:
                break
            at = pos - TAR_MAGIC_AT
            if _is_tar(data, at):
                for body in tar_members(data[at:], cap):
                    yield blob.child(body, "tar", text=False)
                break  # tarfile walks every later member itself
            pos = data.find(b"ustar", pos + 1)


DECODER = ArchiveDecoder()
