"""ecosystems/pypi.py reads Name and Version of plain metadata without email's parser: the same
values as email's BytesHeaderParser on every form it takes, and no answer (email decides) on the
rest. Over the corpus's METADATA/PKG-INFO files and hand-made edge cases."""

from __future__ import annotations

import email.parser
import tarfile
import zipfile
from pathlib import Path

from osptrack.ecosystems.pypi import plain_headers

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "pypi"

CASES = [
    b"Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\nSummary: x\n\nbody: not a header\n",
    b"Name: six\nVersion: 1.16.0",  # no final newline
    b"Name: six\nVersion: 1.16.0\n",
    b"name: lower\nVERSION: 2\n",
    b"Name:\tTabbed\nVersion:   3  \n",
    b"Name: first\nName: second\nVersion: 1\n",
    b"Name: a\nDescription: line one\n       continued\nVersion: 1\n",  # continuation: email's
    b"Name: a\r\nVersion: 1\r\n",  # CRLF: email's
    b"Name: caf\xc3\xa9\nVersion: 1\n",  # UTF-8: email's
    b"From someone\nName: a\nVersion: 1\n",
    b"Name: a\nnot a header line\nVersion: 1\n",
    b"\nName: a\nVersion: 1\n",
    b"",
    b":empty name\nName: a\n",
    b"Name: a\nVersion: 1\n\nName: body\n",
    b"Name: a:b:c\nVersion: 1\n",
    b"Name:\nVersion: 1\n",
]


def _metadata_files() -> list[bytes]:
    found = list(CASES)
    if CORPUS.is_dir():
        for path in sorted(CORPUS.rglob("*")):
            if path.name.endswith(".whl"):
                with zipfile.ZipFile(path) as zf:
                    found += [zf.read(n) for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
            elif path.name.endswith(".tar.gz"):
                with tarfile.open(path) as tf:
                    for m in tf.getmembers():
                        if m.name.count("/") == 1 and m.name.endswith("/PKG-INFO"):
                            fh = tf.extractfile(m)
                            assert fh is not None
                            found.append(fh.read())
    return found


def test_plain_headers_give_emails_name_and_version_or_leave_it_to_email() -> None:
    taken = 0
    for data in _metadata_files():
        headers = email.parser.BytesHeaderParser().parsebytes(data)
        want = (str(headers.get("Name") or "").strip(), str(headers.get("Version") or "").strip())
        fields = plain_headers(data)
        if fields is None:
            continue
        taken += 1
        assert (fields.get("name", "").strip(), fields.get("version", "").strip()) == want, data[:200]
        assert set(fields) == {k.lower() for k in headers}, data[:200]
    assert taken >= 8  # the plain form is the common one


def test_what_email_must_decide_is_left_to_it() -> None:
    for data in CASES[6:14]:
        assert plain_headers(data) is None, data
